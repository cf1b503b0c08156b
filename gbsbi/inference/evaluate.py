"""Posterior draws for many simulations with known parameters, reduced to what calibration
and accuracy need (:mod:`gbsbi.diagnostics.calibration`).

Parameters are compared on the scale of the prior: D and c linear, log10 sigma.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gbsbi.diagnostics.calibration import ranks
from gbsbi.inference.posterior import GbPosterior

#: Central interval reported as "the" interval (5 % to 95 %).
LEVEL = 0.9


@dataclass(frozen=True)
class Evaluation:
    """Summaries of the posteriors of n simulations, on the prior's scale (D, log10 sigma, c).

    Attributes:
        truth: true values, shape (n, 3).
        mean: posterior means, shape (n, 3).
        rank: rank statistics of the truth, shape (n, 3).
        low, high: bounds of the central 90 % interval, shape (n, 3).
    """

    truth: np.ndarray
    mean: np.ndarray
    rank: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def contains(self) -> np.ndarray:
        return (self.truth >= self.low) & (self.truth <= self.high)

    @property
    def width(self) -> np.ndarray:
        return self.high - self.low


def scaled(theta: np.ndarray) -> np.ndarray:
    """(D, log10 sigma, c) of theta = (D, sigma, c), shape (..., 3)."""
    theta = np.asarray(theta, dtype=np.float64)
    return np.stack([theta[..., 0], np.log10(theta[..., 1]), theta[..., 2]], axis=-1)


def evaluate(
    posterior: GbPosterior,
    x: np.ndarray,
    theta: np.ndarray,
    draws: int = 1000,
    batch: int = 250,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Sample ``draws`` per simulation and summarise them.

    Args:
        posterior: the model's posterior.
        x: network inputs, shape (n, D).
        theta: true (D, sigma, c), shape (n, 3).
        draws: posterior draws per simulation.
        batch: simulations sampled together.
        seed: seeds torch's generator.
        progress: called with the number of simulations done after each batch.
    """
    torch.manual_seed(seed)
    truth = scaled(theta)
    parts = []
    for start in range(0, len(x), batch):
        stop = min(start + batch, len(x))
        sample = scaled(posterior.sample_batched((draws,), torch.as_tensor(x[start:stop])).numpy())
        low, high = np.quantile(sample, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
        parts.append((sample.mean(0), ranks(sample, truth[start:stop]), low, high))
        if progress is not None:
            progress(stop - start)
    mean, rank, low, high = (np.concatenate(p) for p in zip(*parts, strict=True))
    return Evaluation(truth, mean, rank, low, high)
