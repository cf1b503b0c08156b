r"""The non-equilibrium measure Phi of a two-time map (SPEC section 3, paper Eqs. 1-3).

On a map of n uniformly spaced frames, over the pairs i < j (diagonal excluded, NaN ignored):

.. math::

    C_{TTI}(k) = \operatorname{mean}_i C(i, i + k), \qquad
    \delta C(i, j) = C(i, j) - C_{TTI}(j - i), \qquad
    \Phi = \operatorname{mean}(\delta C^2) / \operatorname{var}(C).

Since C_TTI is each diagonal's mean, var(C) = var(C_TTI) + mean(dC^2), so Phi lies in [0, 1] and
is 0 for every Toeplitz (time-translation-invariant) map.

Split-half form: with two maps A and B estimated from disjoint halves of a ROI's pixels, their
photon noise is independent, so replacing each square by the product of the two halves'
deviations, mean(dA dB) / cov(A, B), removes the noise bias of the plain estimator.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def _pairs_by_lag(T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row and column indices of the pairs i < j, sorted by lag; segment starts and lags."""
    i, j = np.triu_indices(T, k=1)
    order = np.argsort(j - i, kind="stable")
    i, j = i[order], j[order]
    lags = j - i
    starts = np.flatnonzero(np.r_[True, lags[1:] != lags[:-1]])
    return i, j, starts, lags


def _pair_values(C: np.ndarray) -> np.ndarray:
    """C(i, j) over the pairs i < j sorted by lag, shape (..., T(T-1)/2), float64."""
    C = np.asarray(C)
    T = C.shape[-1]
    i, j, _, _ = _pairs_by_lag(T)
    flat = C.reshape(*C.shape[:-2], T * T)
    return np.take(flat, i * T + j, axis=-1).astype(np.float64)


def _drift_of_pairs(values: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    _, _, starts, lags = _pairs_by_lag(T)
    valid = ~np.isnan(values)
    if valid.all():
        sums = np.add.reduceat(values, starts, axis=-1)
        counts = np.diff(np.r_[starts, values.shape[-1]])
    else:
        sums = np.add.reduceat(np.where(valid, values, 0.0), starts, axis=-1)
        counts = np.add.reduceat(valid, starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c_tti = sums / counts
    return c_tti, values - c_tti[..., lags - 1]


def drift(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal averages and the non-equilibrium drift of a batch of maps.

    Args:
        C: two-time maps, shape (..., T, T); NaN marks missing entries.

    Returns:
        ``(C_tti, dC)``: C_TTI(k) for lags k = 1..T-1, shape (..., T-1), and dC(i, j) over the
        pairs i < j sorted by lag, shape (..., T(T-1)/2); NaN where C is NaN.
    """
    return _drift_of_pairs(_pair_values(C), np.shape(C)[-1])


def _mean(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN, given the number of finite entries."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(values, axis=-1) / count


def phi(C: np.ndarray, C_other: np.ndarray | None = None) -> np.ndarray:
    """The non-equilibrium measure Phi of each map.

    Args:
        C: two-time maps, shape (..., T, T); NaN marks missing entries (dropped frames).
        C_other: optional second estimate of the same maps from a disjoint half of the pixels,
            same shape. When given, the split-half (noise-unbiased) Phi is returned.

    Returns:
        Phi, shape (...), in [0, 1] for the plain form; 0 for a constant map, NaN for a map
        with no finite pair. The split-half form can leave [0, 1] by noise.
    """
    T = np.shape(C)[-1]
    A = _pair_values(C)
    B = A if C_other is None else _pair_values(C_other)
    if C_other is not None:
        both = np.isnan(A) | np.isnan(B)
        A, B = np.where(both, np.nan, A), np.where(both, np.nan, B)
    _, dA = _drift_of_pairs(A, T)
    dB = dA if C_other is None else _drift_of_pairs(B, T)[1]
    count = np.sum(~np.isnan(A), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a0 = A - (_mean(A, count))[..., None]
        b0 = a0 if C_other is None else B - (_mean(B, count))[..., None]
        numerator = _mean(dA * dB, count)
        denominator = _mean(a0 * b0, count)
        out = numerator / denominator
    # A constant map is Toeplitz: no drift, Phi = 0. No finite pair at all: undefined.
    return np.where(denominator > 0, out, np.where(count > 0, 0.0, np.nan))
