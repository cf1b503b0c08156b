r"""Accuracy and calibration of posterior draws against known parameters (SPEC section 7).

For n simulations with true parameters theta_i and posterior draws theta_i^(s), the rank
statistic of parameter k is r_ik = mean_s [theta_ik^(s) < theta_ik], uniform on [0, 1] for a
calibrated posterior. The truth lies in the central credible interval of level alpha when
|r_ik - 1/2| <= alpha / 2, so the expected coverage at level alpha is

.. math::

    \hat c_k(\alpha) = \frac1n \sum_i \mathbb 1\big[\,|r_{ik} - 1/2| \le \alpha / 2\,\big],

on the diagonal c = alpha for a calibrated posterior, above it for one too wide
(conservative), below it for one too narrow (overconfident). With n simulations its binomial
standard error is sqrt(alpha (1 - alpha) / n).
"""

from __future__ import annotations

import numpy as np

#: Levels of the coverage curves, 0.05 ... 0.95.
LEVELS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def ranks(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank statistics r_ik.

    Args:
        samples: posterior draws, shape (draws, n, d).
        truth: true parameters, shape (n, d).

    Returns:
        Fraction of draws below the truth, shape (n, d), in [0, 1]; ties count half.
    """
    samples = np.asarray(samples)
    below = (samples < truth[None]).mean(axis=0)
    ties = (samples == truth[None]).mean(axis=0)
    return below + ties / 2


def central_coverage(rank: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """Expected coverage of central intervals, shape (len(levels), d), from ranks (n, d)."""
    rank = np.asarray(rank)
    return np.stack([(np.abs(rank - 0.5) <= level / 2).mean(axis=0) for level in levels])


def r2_score(truth: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Coefficient of determination 1 - SS_res / SS_tot per column, shape (d,)."""
    truth, estimate = np.atleast_2d(truth.T).T, np.atleast_2d(estimate.T).T
    residual = np.sum((truth - estimate) ** 2, axis=0)
    total = np.sum((truth - truth.mean(axis=0)) ** 2, axis=0)
    return 1 - residual / total


def rmse(truth: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Root-mean-square error per column, shape (d,)."""
    return np.sqrt(np.mean((np.asarray(truth) - np.asarray(estimate)) ** 2, axis=0))


def interval_contains(samples: np.ndarray, truth: np.ndarray, level: float = 0.9) -> np.ndarray:
    """Whether the central interval of ``level`` contains the truth, shape (n, d)."""
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return (truth >= low) & (truth <= high)
