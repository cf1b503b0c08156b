r"""Accuracy and calibration of posterior draws against known parameters
(docs/validation.md#expected-coverage).

For n simulations with true parameters theta_i and posterior draws theta_i^(s), the rank
statistic of parameter k is r_ik = mean_s [theta_ik^(s) < theta_ik], uniform on [0, 1] for a
calibrated posterior. The truth lies in the central credible interval of level alpha when
|r_ik - 1/2| <= alpha / 2, so the expected coverage at level alpha is

.. math::

    \hat c_k(\alpha) = \frac1n \sum_i \mathbb 1\big[\,|r_{ik} - 1/2| \le \alpha / 2\,\big],

on the diagonal c = alpha for a calibrated posterior, above it for one too wide
(conservative), below it for one too narrow (overconfident). With n simulations its binomial
standard error is sqrt(alpha (1 - alpha) / n).

Joint (highest-density) coverage. With the posterior density q evaluated at the draws and at
the truth, the truth enters the highest-density region at the level
h_i = mean_s [q(theta_i^(s) | x_i) > q(theta_i | x_i)] (uniform on [0, 1] for a calibrated
posterior, Deistler et al. 2022), and the expected coverage at level alpha is
mean_i 1[h_i <= alpha]. Any constant factor of q (its normalisation) cancels.
"""

from __future__ import annotations

import numpy as np

#: The level of "the" interval: the central 90 % interval (5 % to 95 % quantiles).
LEVEL = 0.9
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


def hpd_levels(log_prob_draws: np.ndarray, log_prob_truth: np.ndarray) -> np.ndarray:
    """Level h_i at which the truth enters the highest-density region (module docstring).

    Args:
        log_prob_draws: log q at the posterior draws, shape (draws, n).
        log_prob_truth: log q at the true parameters, shape (n,).

    Returns:
        h, shape (n,), in [0, 1]; ties count half.
    """
    draws, truth = np.asarray(log_prob_draws), np.asarray(log_prob_truth)[None]
    return (draws > truth).mean(axis=0) + (draws == truth).mean(axis=0) / 2


def hpd_coverage(levels_hpd: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """Expected coverage of the joint highest-density regions, shape (len(levels),)."""
    h = np.asarray(levels_hpd)
    return np.array([(h <= level).mean() for level in levels])


def binomial_band(levels: np.ndarray, n: int, confidence: float = 0.95) -> np.ndarray:
    """Central ``confidence`` band of the coverage of n calibrated simulations per level.

    Returns:
        Lower and upper bounds, shape (2, len(levels)): the binomial quantiles of
        Bin(n, alpha) divided by n.
    """
    from scipy.stats import binom

    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    return np.stack([binom.ppf(q, n, np.asarray(levels)) / n for q in tails])


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


def sbc_bins(n: int) -> int:
    """Bins of a rank histogram of n simulations: about 10 expected per bin (a band that says
    something), between 2 and 20."""
    return int(np.clip(n // 10, 2, 20))


def ks_halfwidth(n: int, confidence: float = 0.95) -> float:
    """Half-width d of the simultaneous band ECDF(z) - z in [-d, d] that holds the whole ECDF
    of n independent uniform values with probability ``confidence`` (Kolmogorov-Smirnov)."""
    from scipy.stats import kstwo

    return float(kstwo.ppf(confidence, n))


def ks_pvalue(ecdf: np.ndarray, z: np.ndarray, n: int) -> float:
    """KS p-value of an ECDF of n values against the uniform, from its values at z: the curve
    leaves the band of :func:`ks_halfwidth` exactly when this is below 1 - confidence (on the
    grid z the distance is a lower bound of the supremum, so p is an upper bound)."""
    from scipy.stats import kstwo

    distance = float(np.max(np.abs(np.asarray(ecdf) - np.asarray(z))))
    return float(kstwo.sf(distance, n))
