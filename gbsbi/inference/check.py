r"""Calibration and accuracy of a trained model on simulations with known parameters
(SPEC section 7), from one set of posterior draws.

For n simulations (x_i, u_i) the flow q(u | x) is sampled ``draws`` times per x_i with the
flow's ``sample_and_log_prob`` (the log-density of each draw comes with it), keeping the
draws inside the prior's cube as sbi's ``DirectPosterior`` does (rejection, repeated until
every x_i has its draws). The same draws then give

* the posterior mean and central intervals on the scale of the prior (D, log10 sigma, c,
  affine in u), their R^2, RMSE and coverage;
* the joint highest-density coverage from log q at the draws and at the truth
  (:func:`gbsbi.diagnostics.calibration.hpd_levels`);
* SBC ranks with sbi's ``run_sbc`` and ``check_sbc``, and TARP with ``run_tarp`` and
  ``check_tarp``; both are handed the draws through :class:`Drawn`, sbi's posterior
  interface over draws already made, so that every figure rests on the same draws.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gbsbi.diagnostics.calibration import (
    LEVELS,
    binomial_band,
    central_coverage,
    hpd_coverage,
    hpd_levels,
    r2_score,
    rmse,
)
from gbsbi.inference.flow import log_prob_given
from gbsbi.inference.model import TrainedModel

#: Central interval reported as "the" interval.
LEVEL = 0.9


class Drawn:
    """sbi's ``sample_batched`` over draws already made, for ``run_sbc`` and ``run_tarp``.

    Args:
        draws: u, shape (draws, n, 3), for the n inputs ``x`` it will be asked about.
        x: those inputs, shape (n, D).
    """

    def __init__(self, draws: Tensor, x: Tensor) -> None:
        self.draws, self.x = draws, x

    def sample_batched(self, sample_shape: tuple[int, ...], x: Tensor,
                       show_progress_bars: bool = False) -> Tensor:
        if tuple(sample_shape) != (len(self.draws),) or not torch.equal(x, self.x):
            raise ValueError("Drawn serves only the draws and inputs it was made with")
        return self.draws


@torch.no_grad()
def draw_in_cube(
    flow: torch.nn.Module, x: Tensor, draws: int, batch: int = 100
) -> tuple[Tensor, Tensor]:
    """Draws u ~ q(u | x) inside [0, 1]^3 with their log q, for many inputs.

    Args:
        flow: sbi's estimator of :func:`gbsbi.inference.flow.build_flow`.
        x: inputs, shape (n, D).
        draws: draws per input.
        batch: inputs sampled together.

    Returns:
        u, shape (draws, n, 3), and log q(u | x), shape (draws, n); torch's global generator
        is the source of randomness.
    """
    us, logs = [], []
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        kept_u = torch.empty(draws, len(xb), 3)
        kept_lp = torch.empty(draws, len(xb))
        count = torch.zeros(len(xb), dtype=torch.long)
        ask = draws
        while (count < draws).any():
            pending = torch.nonzero(count < draws).flatten()
            # nflows' order is (inputs, draws); sbi 0.27's sample_and_log_prob reshapes it
            # without the transpose its sample() has, which pairs draws with the wrong x
            u, lp = flow.net.sample_and_log_prob(ask, context=xb[pending])
            u, lp = u.transpose(0, 1), lp.transpose(0, 1)
            inside = ((u >= 0) & (u <= 1)).all(-1)  # (ask, pending)
            for j, k in enumerate(pending.tolist()):
                good = torch.nonzero(inside[:, j]).flatten()[: draws - count[k]]
                kept_u[count[k]:count[k] + len(good), k] = u[good, j]
                kept_lp[count[k]:count[k] + len(good), k] = lp[good, j]
                count[k] += len(good)
            rate = max(float(inside.float().mean()), 0.05)
            ask = int(min(draws, max(16, (draws - count.min().item()) / rate * 1.2)))
        us.append(kept_u)
        logs.append(kept_lp)
    return torch.cat(us, 1), torch.cat(logs, 1)


@torch.no_grad()
def log_prob_truth(flow: torch.nn.Module, u: Tensor, x: Tensor, batch: int = 1000) -> Tensor:
    """log q(u_i | x_i) for each pair, shape (n,)."""
    embedding = flow.net._embedding_net
    out = [log_prob_given(flow, u[s:s + batch], embedding(x[s:s + batch]))
           for s in range(0, len(x), batch)]
    return torch.cat(out)


@dataclass(frozen=True)
class CheckResult:
    """Every number of a check (see :meth:`to_dict`), and what the figures need.

    Attributes:
        truth, mean, low, high: on the prior's scale (D, log10 sigma, c), shape (n, 3).
        rank: SBC ranks from sbi's ``run_sbc`` (draws below the truth), shape (n, 3).
        hpd: level at which the truth enters the joint HPD region, shape (n,).
        draws: posterior draws per simulation.
        sbc: sbi's ``check_sbc`` figures, as lists.
        tarp: ``ecp`` and ``alpha`` from ``run_tarp`` and ``atc``, ``ks_pvalue`` from
            ``check_tarp``.
        seconds: time of the draws, of the SBC and TARP and in all.
    """

    truth: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rank: np.ndarray
    hpd: np.ndarray
    draws: int
    sbc: dict
    tarp: dict
    seconds: dict

    def to_dict(self) -> dict:
        n = len(self.truth)
        central = central_coverage(self.rank / self.draws, LEVELS)
        contains = (self.truth >= self.low) & (self.truth <= self.high)
        return {
            "n": n, "draws": self.draws, "parameters": ["D", "log10_sigma", "c"],
            "r2": r2_score(self.truth, self.mean).tolist(),
            "rmse": rmse(self.truth, self.mean).tolist(),
            "coverage_90": contains.mean(0).tolist(),
            "mean_width_90": (self.high - self.low).mean(0).tolist(),
            "levels": LEVELS.tolist(),
            "central_coverage": central.T.tolist(),
            "hpd_coverage": hpd_coverage(self.hpd, LEVELS).tolist(),
            "binomial_band_95": binomial_band(LEVELS, n).tolist(),
            "sbc": self.sbc, "tarp": self.tarp, "seconds": self.seconds,
        }


def _scale(model: TrainedModel) -> tuple[np.ndarray, np.ndarray]:
    """(offset, width) that take u to (D, log10 sigma, c)."""
    prior = model.spec.prior
    low = np.array([np.log10(p.low) if p.scale == "log" else p.low for p in prior.parameters])
    high = np.array([np.log10(p.high) if p.scale == "log" else p.high
                     for p in prior.parameters])
    return low, high - low


def run_check(
    model: TrainedModel, x: np.ndarray, u: np.ndarray, draws: int = 1000, seed: int = 0,
    batch: int = 100,
) -> CheckResult:
    """Draw, and compute every number of a check.

    Args:
        model: the trained model.
        x: network inputs of the simulations, shape (n, D).
        u: their true parameters in the unit cube, shape (n, 3).
        draws: posterior draws per simulation.
        seed: seeds torch's generator (draws, TARP's reference points, sbi's C2ST).
        batch: simulations sampled together.
    """
    from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp

    start = time.perf_counter()
    torch.manual_seed(seed)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    u_t = torch.as_tensor(u, dtype=torch.float32)
    flow = model.flow.eval()
    samples, log_q = draw_in_cube(flow, x_t, draws, batch)
    hpd = hpd_levels(log_q.numpy(), log_prob_truth(flow, u_t, x_t).numpy())
    drawn = time.perf_counter()
    offset, width = _scale(model)
    scaled = offset + samples.double().numpy() * width
    low, high = np.quantile(scaled, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    posterior = Drawn(samples, x_t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sbi's "use 100s of samples" notes
        ranks, dap = run_sbc(u_t, x_t, posterior, num_posterior_samples=draws,
                             show_progress_bar=False)
        sbc = check_sbc(ranks, torch.rand(len(u_t), 3), dap, num_posterior_samples=draws)
        # sbi bins the credibility values in n // 10 bins: at least 2 for a small test set
        ecp, alpha = run_tarp(u_t, x_t, posterior, num_posterior_samples=draws,
                              show_progress_bar=False, num_bins=max(2, len(u_t) // 10))
        atc, ks = check_tarp(ecp, alpha)
    end = time.perf_counter()
    return CheckResult(
        truth=offset + u.astype(np.float64) * width, mean=scaled.mean(0), low=low, high=high,
        rank=ranks.numpy(), hpd=hpd, draws=draws,
        sbc={k: v.tolist() for k, v in sbc.items()},
        tarp={"ecp": ecp.tolist(), "alpha": alpha.tolist(), "atc": float(atc),
              "ks_pvalue": float(ks)},
        seconds={"draws": drawn - start, "sbc_tarp": end - drawn, "total": end - start},
    )
