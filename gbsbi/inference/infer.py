"""Posterior draws for every scan of a maps file, from a trained model, and the files that
hold them: the posterior file, the CSV beside it and the plots folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import ScanInputs, scan_inputs
from gbsbi.inference.inputs import SCALARS, InputLayout
from gbsbi.inference.model import TrainedModel
from gbsbi.inference.posterior import GbPosterior
from gbsbi.io.posteriors import (
    PosteriorDraws,
    csv_beside,
    format_table,
    summary_rows,
    unique_names,
    write_csv,
    write_posterior,
)


def draw_posteriors(
    posterior: GbPosterior, scans: ScanInputs, draws: int, chains: int = 4, seed: int = 0
) -> PosteriorDraws:
    """Sample the posterior of every scan.

    Args:
        posterior: the model's posterior.
        scans: the experimental maps as network inputs.
        draws: draws per scan in all, a multiple of ``chains``.
        chains: how many chains the independent draws are split into (for ArviZ).
        seed: seeds torch's generator for the draws.

    Returns:
        Draws of theta, shape (chains, draws / chains, scans, 3), with the scans' conditions.
    """
    if draws < chains or draws % chains:
        raise GbsbiError(f"--draws must be a positive multiple of {chains}, got {draws}")
    torch.manual_seed(seed)
    x = torch.as_tensor(scans.x)
    theta = posterior.sample_batched((draws,), x=x).numpy()  # (draws, scans, 3)
    layout = InputLayout(posterior.model.spec.inputs.bins)
    scalars = scans.x[:, layout.scalars]
    corrected = np.where(scalars[:, SCALARS.index("noise_only")] > 0, np.nan,
                         scalars[:, SCALARS.index("phi_corrected")])
    maps = scans.maps
    scan = maps.scan if maps.scan is not None else np.array([f"map {k}" for k in range(len(x))])
    return PosteriorDraws(
        theta=theta.reshape(chains, draws // chains, *theta.shape[1:]),
        scan=scan, temperature=maps.temperature, q=maps.q,
        phi=scalars[:, SCALARS.index("phi")].astype(np.float64),
        phi_corrected=corrected.astype(np.float64), group=maps.group, truth=maps.theta,
    )


def outside_temperature(model: GbPosterior | TrainedModel, scans: ScanInputs) -> list[str]:
    """Warnings for scans whose temperature lies outside the training bank's range (for a
    posterior or any trained model)."""
    model = model.model if isinstance(model, GbPosterior) else model
    low, high = model.spec.prior.temperature
    maps = scans.maps
    out = []
    for k, t in enumerate(maps.temperature):
        if not low <= t <= high:
            name = maps.scan[k] if maps.scan is not None else f"map {k}"
            out.append(f"scan {name!r}: T = {t:g} K lies outside the model's training range "
                       f"{low:g}-{high:g} K; its "
                       f"{'posterior' if model.regressor is None else 'estimate'} is an "
                       "extrapolation")
    return out


def with_misspecification(model: TrainedModel, scans: ScanInputs,
                          draws: PosteriorDraws) -> PosteriorDraws:
    """The draws with each scan's misspecification p-value, where the model has a
    reference (:mod:`gbsbi.inference.misspecification`); unchanged where it has none."""
    from dataclasses import replace

    from gbsbi.inference.misspecification import features, load_reference, scan_pvalues

    reference = load_reference(model)
    if reference is None:
        return draws
    p = scan_pvalues(reference, features(model, scans.x))
    return replace(draws, misspecification=p, alpha=reference.alpha)


def misspecification_warnings(model: TrainedModel, draws: PosteriorDraws) -> list[str]:
    """One warning per flagged scan, or one that the model has no reference."""
    if draws.misspecification is None:
        return [f"{model.directory}: the model has no misspecification reference, so no scan "
                "is tested; fit one with `gbsbi misspec MODEL_DIR --fit-reference BANK.h5`"]
    names = unique_names(draws.scan)
    return [f"scan {str(names[k])!r} is unlike the simulations (misspecification p = "
            f"{draws.misspecification[k]:.3f} < {draws.alpha:g}); its posterior assumes a "
            "model that does not describe it" for k in np.flatnonzero(draws.flagged)]


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
        model: the trained model.
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
    for line in outside_temperature(posterior, scans):
        warn(line)
    result = with_misspecification(model, scans, draw_posteriors(posterior, scans, draws,
                                                                  seed=seed))
    attrs = {"model": str(model.directory), "model_hash": model.hash, "maps": str(maps),
             "maps_hash": scans.content_hash, "seed": seed, "estimator": spec.estimator,
             "draws_per_scan": draws}
    write_posterior(out, result, attrs)
    rows = summary_rows(result)
    write_csv(csv_path, rows)
    log(format_table(rows, result.alpha))
    for line in misspecification_warnings(model, result):
        warn(line)
    log(f"wrote {out} ({len(rows)} scans x {draws} draws) and {csv_path}")
    if plots:
        from gbsbi.posterior_plots import corner_plots, intervals_plot

        folder.mkdir(exist_ok=True)
        corner_plots(result, spec.prior, folder)
        intervals_plot(result, spec.prior, folder / "intervals.png")
        log(f"wrote {len(rows)} corner plots and intervals.png to {folder}")
    return result
