"""Posterior draws for every scan of a maps file, from a trained model."""

from __future__ import annotations

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import ScanInputs
from gbsbi.inference.inputs import SCALARS, InputLayout
from gbsbi.inference.model import TrainedModel
from gbsbi.inference.posterior import GbPosterior
from gbsbi.io.posteriors import PosteriorDraws, unique_names


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


def outside_temperature(posterior: GbPosterior, scans: ScanInputs) -> list[str]:
    """Warnings for scans whose temperature lies outside the training bank's range."""
    low, high = posterior.model.spec.prior.temperature
    maps = scans.maps
    out = []
    for k, t in enumerate(maps.temperature):
        if not low <= t <= high:
            name = maps.scan[k] if maps.scan is not None else f"map {k}"
            out.append(f"scan {name!r}: T = {t:g} K lies outside the model's training range "
                       f"{low:g}-{high:g} K; its posterior is an extrapolation")
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
