"""``gbsbi infer`` as a function: every scan of a maps file through a trained model, to files.

A posterior estimator gives draws per scan: the posterior file (NetCDF), the CSV beside it,
the table and the plots (:func:`infer_to_files`). A point model gives estimates: the CSV and a
JSON record (:func:`estimates_to_files`). :func:`run_infer` picks by the model's kind.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import ScanInputs, scan_inputs, temperature_warnings
from gbsbi.inference.inputs import SCALARS
from gbsbi.inference.model import TrainedModel, load_model
from gbsbi.inference.npe.predict import GbPosterior
from gbsbi.io.posteriors import (
    PosteriorDraws,
    csv_beside,
    format_table,
    summary_rows,
    unique_names,
    write_csv,
    write_posterior,
)

#: Scans sampled together by :func:`draw_posteriors`.
SCAN_BATCH = 64


def draw_posteriors(
    posterior: GbPosterior, scans: ScanInputs, draws: int, chains: int = 4, seed: int = 0,
    show_progress: bool | None = False,
) -> PosteriorDraws:
    """Sample the posterior of every scan.

    Args:
        posterior: the model's posterior.
        scans: the experimental maps as network inputs.
        draws: draws per scan in all, a multiple of ``chains``.
        chains: how many chains the independent draws are split into (for ArviZ).
        seed: seeds torch's generator for the draws.
        show_progress: a progress display over the scans (None: a bar on a terminal, lines
            in a log; False: none).

    Returns:
        Draws of theta, shape (chains, draws / chains, scans, 3), with the scans' conditions.
    """
    if draws < chains or draws % chains:
        raise GbsbiError(f"--draws must be a positive multiple of {chains}, got {draws}")
    from gbsbi.progress import progress_bar

    torch.manual_seed(seed)
    x = torch.as_tensor(scans.x)
    parts = []
    with progress_bar(len(x), "infer", "scan", show_progress) as bar:
        for start in range(0, len(x), SCAN_BATCH):
            batch = x[start:start + SCAN_BATCH]
            parts.append(posterior.sample_batched((draws,), x=batch).numpy())
            bar.update(len(batch))
    theta = np.concatenate(parts, axis=1)  # (draws, scans, 3)
    layout = posterior.model.spec.inputs.layout
    scalars = scans.x[:, layout.scalars]
    corrected = np.where(scalars[:, SCALARS.index("noise_only")] > 0, np.nan,
                         scalars[:, SCALARS.index("phi_corrected")])
    maps = scans.maps
    return PosteriorDraws(
        theta=theta.reshape(chains, draws // chains, *theta.shape[1:]),
        scan=maps.names(), temperature=maps.temperature, q=maps.q,
        phi=scalars[:, SCALARS.index("phi")].astype(np.float64),
        phi_corrected=corrected.astype(np.float64), group=maps.group, truth=maps.theta,
        age=maps.age,
    )


def with_misspecification(model: TrainedModel, scans: ScanInputs, draws: PosteriorDraws,
                          seed: int = 0) -> PosteriorDraws:
    """The draws with each scan's misspecification p-values (combined and per statistic),
    where the model has a reference (:mod:`gbsbi.validation.misspecification`); unchanged
    where it has none."""
    from gbsbi.validation.misspecification import scan_tests

    flat = draws.theta.reshape(-1, *draws.theta.shape[2:])
    tested = scan_tests(model, scans.x, scans.maps.C, scans.maps.temperature, flat, seed,
                        scans.maps.ages)
    if tested is None:
        return draws
    return replace(draws, misspecification=tested.p, alpha=tested.alpha, tests=tested.tests)


def misspecification_warnings(model: TrainedModel, draws: PosteriorDraws) -> list[str]:
    """One warning per flagged scan (with the statistics that flag it), one where the model
    has no reference (and then one per scan without draws), and one where its density fits
    poorly."""
    from gbsbi.inference.npe.predict import MIN_MASS

    names = unique_names(draws.scan)
    no_draws = draws.without_draws

    def outside(k: int) -> str:
        return (f"scan {names[k]!r} is far outside the model: its posterior has less than "
                f"{MIN_MASS:.1%} of its mass inside the prior, so it has no draws (NaN in the "
                "files); do not read numbers from it")

    if draws.misspecification is None:
        return [f"{model.directory}: the model has no misspecification reference, so no scan "
                "is tested; fit one with `gbsbi misspec MODEL_DIR --fit-reference BANK.h5`",
                *(outside(k) for k in np.flatnonzero(no_draws))]
    out = []
    for k in np.flatnonzero(draws.flagged):
        tests = draws.tests or {}
        if no_draws[k]:
            out.append(outside(k) + " (flagged)")
            continue
        detail = ", ".join(f"{name} p = {p[k]:.3f}" for name, p in tests.items()
                           if np.isfinite(p[k]))
        out.append(f"scan {names[k]!r} is unlike the simulations (misspecification p = "
                   f"{draws.misspecification[k]:.3f} < {draws.alpha:g}; {detail}): its "
                   "posterior assumes a model that does not describe it, do not trust it")
    return out


def outputs(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """The posterior file, the CSV and the plots folder that go with ``out``."""
    out = Path(out)
    return out, csv_beside(out), out.with_name(out.stem + "-plots")


def infer_to_files(
    model: TrainedModel,
    maps: str | os.PathLike,
    out: str | os.PathLike,
    draws: int = 4000,
    seed: int = 0,
    plots: bool = True,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> PosteriorDraws:
    """Posteriors for every scan of ``maps``: the NetCDF file, the CSV, and the plots.

    Args:
        model: the trained posterior estimator.
        maps: the maps file.
        out: the posterior file (NetCDF); the CSV and the folder ``<stem>-plots`` go beside it.
        draws: draws per scan, a multiple of 4 (the chains).
        seed: seeds the draws.
        plots: also write a corner plot per scan and the intervals figure.
        log: where the table and notes go.
        warn: where warnings go.
    """
    out, csv_path, folder = outputs(out)
    spec = model.spec
    scans = scan_inputs(maps, spec.experiment, spec.inputs)
    for note in scans.notes:
        log(note)
    posterior = GbPosterior(model)
    for line in temperature_warnings(scans.maps, spec.prior, "posterior"):
        warn(line)
    drawn = draw_posteriors(posterior, scans, draws, seed=seed, show_progress=None)
    result = with_misspecification(model, scans, drawn, seed)
    attrs = {"model": str(model.directory), "model_hash": model.hash, "maps": str(maps),
             "maps_hash": scans.content_hash, "seed": seed, "estimator": spec.kind,
             "draws_per_scan": draws}
    write_posterior(out, result, attrs)
    rows = summary_rows(result)
    write_csv(csv_path, rows)
    log(format_table(rows, result.alpha))
    for line in misspecification_warnings(model, result):
        warn(line)
    log(f"wrote {out} ({len(rows)} scans x {draws} draws) and {csv_path}")
    if plots:
        from gbsbi.plots.posterior import corner_plots, intervals_plot

        folder.mkdir(exist_ok=True)
        corners = corner_plots(result, spec.prior, folder)
        with warnings.catch_warnings():  # a scan without draws has NaN quantiles: not drawn
            warnings.simplefilter("ignore", RuntimeWarning)
            intervals_plot(result, spec.prior, folder / "intervals.png")
        residuals = residual_plots(model, scans, result, folder, seed)
        log(f"wrote {len(corners)} corner plots, intervals.png"
            + (f" and the predictive residual maps of {residuals} flagged scans"
               if residuals else "") + f" to {folder}")
    return result


def residual_plots(model: TrainedModel, scans: ScanInputs, result: PosteriorDraws,
                   folder: Path, seed: int = 0) -> int:
    """The predictive check of each flagged scan (``residual_<scan>.png``: the map, a
    replicate, the residual in predictive sd, Phi, cuts); returns how many. A scan without
    draws (its posterior outside the prior) has no predictive distribution, and no plot."""
    from gbsbi.plots.posterior import safe_name
    from gbsbi.plots.ppc import ppc_plot
    from gbsbi.validation.ppc import check_scan
    from gbsbi.validation.statistics import PPC_DRAWS

    spec = model.spec
    flat = result.theta.reshape(-1, *result.theta.shape[2:])
    rng = np.random.default_rng(seed)
    names = unique_names(result.scan)
    flagged = np.flatnonzero(result.flagged & ~result.without_draws)
    for k in flagged:
        check = check_scan(flat[:PPC_DRAWS, k], float(scans.maps.temperature[k]),
                           scans.maps.C[k], spec.experiment, spec.nuisance, rng,
                           None if spec.sample.single else spec.sample,
                           float(scans.maps.ages[k]))
        title = (f"{names[k]}: FLAGGED, not to be trusted (misspecification p = "
                 f"{result.misspecification[k]:.3f}); replicates at {PPC_DRAWS} posterior draws")
        ppc_plot(check, scans.maps.t, title, folder / f"residual_{safe_name(names[k])}.png")
    return len(flagged)


def estimates_to_files(
    model: TrainedModel, maps: str | os.PathLike, csv_path: str | os.PathLike,
    heads: str = "auto", log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> Path:
    """A point model's estimates for every scan of ``maps``: the CSV and its JSON record."""
    from gbsbi.inference.point.predict import point_estimates
    from gbsbi.io.estimates import NOTICE, estimate_rows, format_estimates, write_estimates

    spec = model.spec
    scans = scan_inputs(maps, spec.experiment, spec.inputs)
    for note in scans.notes:
        log(note)
    for line in temperature_warnings(scans.maps, spec.prior, "estimate"):
        warn(line)
    estimates, notes = point_estimates(model, scans, heads)
    for note in notes:
        warn(f"note: {note}")
    rows = estimate_rows(estimates)
    record = {"estimator": "point", "model": str(model.directory), "model_hash": model.hash,
              "maps": str(maps), "maps_hash": scans.content_hash, "head": heads}
    csv_path, side = write_estimates(csv_path, rows, record)
    log(format_estimates(rows))
    log(f"wrote {csv_path} ({len(rows)} scans: {NOTICE}) and {side}")
    return Path(csv_path)


def run_infer(
    model_dir: str | os.PathLike, maps: str | os.PathLike, out: str | os.PathLike, *,
    draws: int = 4000, seed: int = 0, plots: bool = True, heads: str = "auto",
    overwrite: bool = False, log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> Path:
    """``gbsbi infer``: posteriors (a posterior estimator) or estimates (a point model) of
    every scan of ``maps``, refusing to replace outputs unless ``overwrite``; returns the main
    output file."""
    from gbsbi.io.atomic import check_writable
    from gbsbi.io.estimates import record_beside

    out, csv_path, plots_folder = outputs(check_writable(out))
    model = load_model(model_dir)
    point = model.spec.kind == "point"
    targets = (csv_path, record_beside(csv_path)) if point else (out, csv_path, plots_folder)
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise GbsbiError(f"{existing[0]} exists; pass --overwrite to replace it")
    if point:
        return estimates_to_files(model, maps, csv_path, heads, log, warn)
    if draws < 4 or draws % 4:
        raise GbsbiError(f"--draws must be a positive multiple of 4, got {draws}")
    if heads != "auto":
        raise GbsbiError(f"--head {heads}: {model_dir} is a posterior estimator, it has no "
                         "heads (only point models do)")
    infer_to_files(model, maps, out, draws, seed, plots, log, warn)
    return out
