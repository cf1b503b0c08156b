"""``gbsbi ppc``: the posterior predictive check of every scan of a posterior file, written to
a folder (docs/validation.md#posterior-predictive-checks): ``ppc.json`` and a figure per scan.
The check itself is :func:`gbsbi.validation.ppc.check_scan`; the figure
:func:`gbsbi.plots.ppc.ppc_plot`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.validation.ppc import check_scan


def ppc_to_files(
    model_dir: str | os.PathLike, maps: str | os.PathLike, posteriors: str | os.PathLike,
    out: str | os.PathLike, *, draws: int = 100, scans: int | None = None, seed: int = 0,
    overwrite: bool = False, log: Callable[[str], None] = print,
) -> dict:
    """``gbsbi ppc``: the predictive check of every scan (or the first ``scans``) of a
    posterior file made by ``model_dir`` from ``maps``, written to ``out/ppc.json`` and a figure
    per scan; returns the JSON's content. Reads the model's configuration, not its networks."""
    from gbsbi.inference.data import check_experiment, conform, maps_hash
    from gbsbi.inference.spec import read_spec
    from gbsbi.io.atomic import atomic_folder, check_new_folder
    from gbsbi.io.mapsfile import read_maps
    from gbsbi.io.posteriors import draws_from_data, read_posterior, unique_names
    from gbsbi.plots.posterior import safe_name
    from gbsbi.plots.ppc import ppc_plot

    check_new_folder(out, overwrite)
    if draws < 10:
        raise GbsbiError(f"--draws must be at least 10, got {draws}")
    spec, _, model_hash = read_spec(model_dir)
    config = spec.experiment
    data = read_posterior(posteriors)
    observed = read_maps(maps)
    content = maps_hash(observed)
    recorded = str(data.posterior.attrs.get("maps_hash", ""))
    if recorded and recorded != content:
        raise GbsbiError(f"{posteriors}: made from other maps than {maps} (maps hash differs)")
    if str(data.posterior.attrs.get("model_hash", model_hash)) != model_hash:
        raise GbsbiError(f"{posteriors}: made with another model than {model_dir}")
    check_experiment(None, config, str(maps))
    observed, notes = conform(observed, config, str(maps))
    for note in notes:
        log(note)
    drawn = draws_from_data(data)
    names = unique_names(drawn.scan)
    if list(names) != list(unique_names(observed.names())):
        raise GbsbiError(f"{posteriors}: its scans are not those of {maps}")
    flat = drawn.theta.reshape(-1, *drawn.theta.shape[2:])
    count = len(names) if scans is None else min(scans, len(names))
    rng = np.random.default_rng(seed)
    checks, skipped, empty = {}, [], drawn.without_draws
    for k in range(count):
        if empty[k]:  # its posterior outside the prior: nothing to replicate
            skipped.append(str(names[k]))
            log(f"{names[k]}: no draws (its posterior lies outside the prior), no check")
            continue
        pick = rng.choice(len(flat), size=min(draws, len(flat)), replace=False)
        check = check_scan(flat[pick, k], float(observed.temperature[k]), observed.C[k], config,
                           spec.nuisance, rng, spec.sample, float(observed.ages[k]))
        checks[str(names[k])] = check
        n = check.numbers
        log(f"{names[k]}: Phi_corr {n['phi_corrected_observed']:.3f} (predictive median "
            f"{n['phi_corrected_predictive_q05_q50_q95'][1]:.3f}, p = "
            f"{n['p_phi_corrected']:.2f}); cuts inside 90 % band {n['cuts_inside_90']:.0%}")
    output = {"scans": {name: c.numbers for name, c in checks.items()},
              "without_draws": skipped, "model": str(model_dir),
              "model_hash": model_hash, "maps": str(maps), "maps_hash": content,
              "posteriors": str(posteriors), "draws": draws, "seed": seed, "noise_model": "fast"}
    with atomic_folder(out, overwrite) as folder:
        (folder / "ppc.json").write_text(json.dumps(output, indent=1))
        index = {str(name): k for k, name in enumerate(names)}
        for name, check in checks.items():
            k = index[name]
            title = (f"{name}: T = {observed.temperature[k]:.0f} K; {check.numbers['draws']} "
                     "posterior draws measured with the fast noise model at the scan's noise")
            ppc_plot(check, observed.t, title, folder / f"ppc_{safe_name(name)}.png")
    log(f"wrote {out}")
    return output
