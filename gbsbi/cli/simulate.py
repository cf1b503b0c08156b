"""``gbsbi simulate``: simulation banks over the prior, or maps for given parameters."""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from tqdm import tqdm

from gbsbi.bank import BankSpec, block_rng, simulate_bank
from gbsbi.configuration import load_config
from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import check_writable
from gbsbi.io.mapsfile import Maps, write_maps
from gbsbi.summaries.phi import phi
from simulators.config import ExperimentConfig, MeasurementPrior, Prior, config_hash
from simulators.gb import two_time_maps


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a bank of maps over the prior, or maps for given parameters",
        description="Simulate two-time maps. Without --theta: a bank of N maps with parameters "
        "drawn from the prior, resumable after an interruption (--resume) and parallel "
        "(--workers, --scheduler). With --theta: maps for the given parameters.",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output HDF5 file")
    p.add_argument("--n", type=int, help="number of maps (default 2000; 1 with --theta)")
    p.add_argument("--seed", type=int, default=0, help="root random seed (default 0)")
    p.add_argument("--config", metavar="FILE", help="JSON configuration (see `gbsbi config`)")
    p.add_argument("--block-size", type=int, default=256, help="maps per block (default 256)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask distributed scheduler address")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--theta", metavar="D=..,sigma=..,c=..",
        help="simulate these parameters (D in nm^2/s, sigma in J/m^2, c in [0, 1]) instead of "
        "drawing from the prior; --n gives the number of replicates (default 1 here)",
    )
    p.add_argument("--temperature", type=float, metavar="K", help="temperature for --theta")
    p.add_argument(
        "--measurement", choices=("none", "fast", "exact"), default="none",
        help="simulate maps as measured: none (noiseless), fast (fast noise model) or exact "
        "(photon-counting speckle pixels); nuisance ranges come from the configuration's "
        "'measurement' part",
    )
    pseudo = p.add_argument_group(
        "pseudo-experiments",
        "with --groups: G groups, each with one theta from the prior, measured at every "
        "temperature --repeats times (default 3 x 4 x 5 = 60 maps), written as a maps file "
        "with known theta, groups and split-half maps",
    )
    pseudo.add_argument("--groups", type=int, metavar="G", help="number of groups")
    pseudo.add_argument("--temperatures", default="300,350,400,450", metavar="K,K,...",
                        help="temperatures in K (default 300,350,400,450)")
    pseudo.add_argument("--repeats", type=int, default=5, help="maps per group and temperature")
    pseudo.add_argument("--counts", type=float, default=0.05,
                        help="mean photon counts per pixel per frame (default 0.05)")
    pseudo.add_argument("--n-pix", type=int, default=20_000, help="pixels (default 20000)")
    pseudo.add_argument("--beta", type=float, default=0.2, help="speckle contrast (default 0.2)")
    p.set_defaults(func=run)


def parse_theta(text: str) -> np.ndarray:
    """Parse ``D=..,sigma=..,c=..`` into (D, sigma, c), checking physical validity."""
    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in ("D", "sigma", "c"):
            raise GbsbiError(f"--theta: expected D=..,sigma=..,c=.., found {item!r}")
        try:
            values[key] = float(value)
        except ValueError:
            raise GbsbiError(f"--theta: {key}={value!r} is not a number") from None
    missing = [k for k in ("D", "sigma", "c") if k not in values]
    if missing:
        raise GbsbiError(f"--theta: missing {', '.join(missing)}")
    D, sigma, c = values["D"], values["sigma"], values["c"]
    if not D >= 0:
        raise GbsbiError(f"--theta: D must be >= 0 nm^2/s, got {D}")
    if not sigma > 0:
        raise GbsbiError(f"--theta: sigma must be > 0 J/m^2, got {sigma}")
    if not 0 <= c <= 1:
        raise GbsbiError(f"--theta: c must lie in [0, 1], got {c}")
    return np.array([D, sigma, c])


def run(args: argparse.Namespace) -> int:
    config, prior, nuisance = load_config(args.config)
    if args.theta is not None:
        return _run_given(args, config)
    if args.groups is not None:
        return _run_pseudo(args, config, prior, nuisance)
    if args.temperature is not None:
        raise GbsbiError("--temperature is only used with --theta (banks draw T from the prior)")
    n = 2000 if args.n is None else args.n
    spec = BankSpec(config, prior, n, args.seed, args.block_size, args.measurement, nuisance)
    bar = tqdm(total=spec.n, unit="map", desc="simulate", disable=None, smoothing=0.1)
    finished = []

    def progress(k: int) -> None:
        finished.append(k)
        bar.update(k)

    try:
        content = simulate_bank(
            args.out, spec, resume=args.resume, overwrite=args.overwrite,
            workers=args.workers, scheduler=args.scheduler, progress=progress,
        )
    except KeyboardInterrupt:
        bar.close()
        print(
            f"interrupted after {sum(finished)} of {spec.n} maps; finished blocks are kept, "
            f"continue with the same command and --resume", file=sys.stderr,
        )
        return 130
    bar.close()
    print(f"wrote {args.out}: {spec.n} maps of {config.n_frames} frames, content {content[:12]}")
    return 0


def _run_given(args: argparse.Namespace, config: ExperimentConfig) -> int:
    theta = parse_theta(args.theta)
    if args.temperature is None:
        raise GbsbiError("--theta needs --temperature K")
    if not args.temperature > 0:
        raise GbsbiError(f"--temperature must be > 0 K, got {args.temperature}")
    n = 1 if args.n is None else args.n
    if n < 1:
        raise GbsbiError(f"--n must be at least 1, got {n}")
    thetas = np.tile(theta, (n, 1))
    temperature = np.full(n, args.temperature)
    maps = two_time_maps(thetas, temperature, config, block_rng(args.seed, 0))
    text = config_json_given(config, theta, args.temperature, n, args.seed)
    out = Maps(maps, config.t, temperature, np.full(n, config.q), theta=thetas)
    write_maps(
        args.out, out,
        attrs={"kind": "given", "config": text, "config_hash": config_hash(text),
               "seed": args.seed, "phi": phi(maps)},
    )
    values = ", ".join(f"{v:.3f}" for v in phi(maps)[:5])
    print(f"wrote {args.out}: {n} map(s), Phi = {values}{' ...' if n > 5 else ''}")
    return 0


def config_json_given(
    config: ExperimentConfig, theta: np.ndarray, temperature: float, n: int, seed: int
) -> str:
    """Canonical JSON of what determines maps simulated for given parameters."""
    data = {"experiment": config.to_dict(), "theta": theta.tolist(),
            "temperature": temperature, "n": n, "seed": seed}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _parse_temperatures(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise GbsbiError(f"--temperatures: expected K,K,..., found {text!r}") from None
    if not all(v > 0 for v in values):
        raise GbsbiError(f"--temperatures must be positive (K), got {text}")
    return values


def _run_pseudo(
    args: argparse.Namespace, config: ExperimentConfig, prior: Prior, nuisance: MeasurementPrior
) -> int:
    from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments

    if args.measurement == "none":
        raise GbsbiError("pseudo-experiments (--groups) need --measurement fast or exact")
    if args.groups < 1 or args.repeats < 1:
        raise GbsbiError("--groups and --repeats must be at least 1")
    if not args.counts > 0 or args.n_pix < 2 or not 0 < args.beta <= 1:
        raise GbsbiError("need --counts > 0, --n-pix >= 2 and 0 < --beta <= 1")
    check_writable(args.out)
    if os.path.exists(args.out) and not args.overwrite:
        raise GbsbiError(f"{args.out} exists; pass --overwrite to replace it")
    spec = PseudoSpec(args.groups, _parse_temperatures(args.temperatures), args.repeats,
                      args.counts, args.n_pix, args.beta, args.measurement, args.seed)
    total = spec.groups * len(spec.temperatures) * spec.repeats
    with tqdm(total=total, unit="map", desc="pseudo-experiments", disable=None) as bar:
        maps, extra = write_pseudo_experiments(args.out, spec, config, prior, nuisance,
                                               progress=bar.update)
    print(f"wrote {args.out}: {total} maps ({spec.groups} groups x {len(spec.temperatures)} "
          f"temperatures x {spec.repeats} repeats, {spec.mode} measurement)")
    print("Phi median |error| vs noiseless: plain {:.3f}, corrected {:.3f}, split-half {:.3f}"
          .format(*(np.nanmedian(np.abs(extra[k] - extra["phi_noiseless"]))
                    for k in ("phi", "phi_corrected", "phi_split_half"))))
    return 0
