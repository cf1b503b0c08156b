"""Posterior draws for every scan of a maps file, from a trained model."""

from __future__ import annotations

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import ScanInputs
from gbsbi.inference.inputs import SCALARS, InputLayout
from gbsbi.inference.model import TrainedModel
from gbsbi.inference.posterior import GbPosterior
from gbsbi.io.posteriors import PosteriorDraws


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
