"""``gbsbi ppc``: posterior predictive checks of every scan of a posterior file."""

from __future__ import annotations

import argparse
import json

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ppc",
        help="posterior predictive checks: maps simulated from the posterior vs the scan",
        description="For each scan, simulate maps from posterior draws with the fast "
        "measurement model at the scan's noise level (contrast and counts fitted to the map, "
        "see gbsbi/ppc.py) and compare: observed plain and noise-corrected Phi against their "
        "predictive distributions, cuts C(t1, t1 + tau) with predictive bands, the residual "
        "map. Writes DIR/ppc.json and DIR/ppc_<scan>.png.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="the model the posteriors came from")
    p.add_argument("maps", metavar="MAPS.h5", help="the maps file of the posteriors")
    p.add_argument("posteriors", metavar="POSTERIORS.nc", help="from `gbsbi infer`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--draws", type=positive_int, default=100,
                   help="posterior draws simulated per scan (default 100)")
    p.add_argument("--scans", type=positive_int, metavar="N", help="the first N scans only")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR")
    p.set_defaults(func=run)


def _model_setup(directory: str):  # noqa: ANN202
    """Experiment configuration and nuisance ranges from model.json (no torch needed)."""
    from pathlib import Path

    from gbsbi.errors import GbsbiError
    from simulators.config import ConfigError, ExperimentConfig, MeasurementPrior

    path = Path(directory) / "model.json"
    try:
        meta = json.loads(path.read_text())
        return (ExperimentConfig.from_dict(meta["experiment"]),
                MeasurementPrior.from_dict(meta["measurement"]), meta)
    except FileNotFoundError:
        raise GbsbiError(f"{directory}: not a model directory (model.json is missing)") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
        raise GbsbiError(f"{path}: not a readable model description ({err})") from None


def run(args: argparse.Namespace) -> int:
    import hashlib
    from pathlib import Path

    from gbsbi.errors import GbsbiError
    from gbsbi.io.atomic import check_new_folder

    check_new_folder(args.out, args.overwrite)
    if args.draws < 10:
        raise GbsbiError(f"--draws must be at least 10, got {args.draws}")

    import numpy as np

    from gbsbi.inference.data import check_experiment, conform, maps_hash
    from gbsbi.io.atomic import atomic_folder
    from gbsbi.io.mapsfile import read_maps
    from gbsbi.io.posteriors import draws_from_data, read_posterior, unique_names
    from gbsbi.posterior_plots import safe_name
    from gbsbi.ppc import check_scan
    from gbsbi.ppc_plots import ppc_plot

    config, measurement, _ = _model_setup(args.model)
    model_hash = hashlib.sha256((Path(args.model) / "model.json").read_bytes()).hexdigest()
    data = read_posterior(args.posteriors)
    maps = read_maps(args.maps)
    content = maps_hash(maps)
    recorded = str(data.posterior.attrs.get("maps_hash", ""))
    if recorded and recorded != content:
        raise GbsbiError(f"{args.posteriors}: made from other maps than {args.maps} (maps "
                         "hash differs)")
    if str(data.posterior.attrs.get("model_hash", model_hash)) != model_hash:
        raise GbsbiError(f"{args.posteriors}: made with another model than {args.model}")
    check_experiment(None, config, str(args.maps))
    maps, notes = conform(maps, config, str(args.maps))
    for note in notes:
        print(note)
    draws = draws_from_data(data)
    names = unique_names(draws.scan)
    file_names = unique_names(maps.scan if maps.scan is not None
                              else [f"map {k}" for k in range(len(maps))])
    if list(names) != list(file_names):
        raise GbsbiError(f"{args.posteriors}: its scans are not those of {args.maps}")
    flat = draws.theta.reshape(-1, *draws.theta.shape[2:])
    count = len(names) if args.scans is None else min(args.scans, len(names))
    rng = np.random.default_rng(args.seed)
    checks, numbers = {}, {}
    for k in range(count):
        pick = rng.choice(len(flat), size=min(args.draws, len(flat)), replace=False)
        check = check_scan(flat[pick, k], float(maps.temperature[k]), maps.C[k], config,
                           measurement, rng)
        checks[str(names[k])] = check
        numbers[str(names[k])] = check.numbers
        n = check.numbers
        print(f"{names[k]}: Phi_corr {n['phi_corrected_observed']:.3f} (predictive median "
              f"{n['phi_corrected_predictive_q05_q50_q95'][1]:.3f}, p = "
              f"{n['p_phi_corrected']:.2f}); cuts inside 90 % band {n['cuts_inside_90']:.0%}")
    output = {"scans": numbers, "model": str(args.model), "model_hash": model_hash,
              "maps": str(args.maps), "maps_hash": content, "posteriors": str(args.posteriors),
              "draws": args.draws, "seed": args.seed, "noise_model": "fast"}
    with atomic_folder(args.out, args.overwrite) as out:
        (out / "ppc.json").write_text(json.dumps(output, indent=1))
        for k, (name, check) in enumerate(checks.items()):
            title = (f"{name}: T = {maps.temperature[k]:.0f} K; {check.numbers['draws']} "
                     "posterior draws measured with the fast noise model at the scan's noise")
            ppc_plot(check, maps.t, title, out / f"ppc_{safe_name(name)}.png")
    print(f"wrote {args.out}")
    return 0
