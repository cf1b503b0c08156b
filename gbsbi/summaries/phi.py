r"""The non-equilibrium measure Phi of a two-time map (paper Eqs. 1-3).

On a map of n uniformly spaced frames, over the pairs i < j (diagonal excluded, NaN ignored):

.. math::

    C_{TTI}(k) = \operatorname{mean}_i C(i, i + k), \qquad
    \delta C(i, j) = C(i, j) - C_{TTI}(j - i), \qquad
    \Phi = \operatorname{mean}(\delta C^2) / \operatorname{var}(C).

Since C_TTI is each diagonal's mean, var(C) = var(C_TTI) + mean(dC^2), so Phi lies in [0, 1] and
is 0 for every Toeplitz (time-translation-invariant) map.

Split-half form: with two maps A and B estimated from disjoint halves of a ROI's pixels, their
photon noise is independent, so replacing each square by the product of the two halves'
deviations, mean(dA dB) / cov(A, B), removes the noise bias of the plain estimator. It is
undefined (NaN) where cov(A, B) <= 0: the halves share no signal to measure.

Memory and speed. Phi works through a batch a few maps at a time, and through a map too large for
that in groups of whole diagonals (lags), each of about :data:`PAIRS_PER_PASS` values (a few MB,
so that the working arrays stay in the CPU cache), in two passes (the mean, then the drift): a
10,000-frame map (5 x 10^7 pairs) costs a few tens of MB beside the map itself.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Pair values (maps x pairs) per working array; larger batches go in groups of lags.
PAIRS_PER_PASS = 1 << 18


@lru_cache(maxsize=8)
def _pairs_by_lag(T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row and column indices of the pairs i < j, sorted by lag; segment starts and lags."""
    i, j = np.triu_indices(T, k=1)
    order = np.argsort(j - i, kind="stable")
    i, j = i[order], j[order]
    lags = j - i
    starts = np.flatnonzero(np.r_[True, lags[1:] != lags[:-1]])
    return i, j, starts, lags


@lru_cache(maxsize=8)
def _all_lags(T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat positions i T + j, segment starts and lags of every pair of a small map."""
    i, j, starts, lags = _pairs_by_lag(T)
    return i * T + j, starts, lags


def _lag_pairs(T: int, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat positions, segment starts and lags of the pairs with lags k0 <= k < k1, by lag.

    The pair (i, i + k) sits at i (T + 1) + k of the flattened (T, T) map.
    """
    if (k0, k1) == (1, T):
        return _all_lags(T)
    lags = np.arange(k0, k1)
    sizes = T - lags
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    lag = np.repeat(lags, sizes)
    i = np.arange(sizes.sum()) - np.repeat(starts, sizes)
    return i * (T + 1) + lag, starts, lag


def _lag_groups(T: int, n_maps: int) -> list[tuple[int, int]]:
    """Ranges [k0, k1) of lags whose pairs for ``n_maps`` maps fit :data:`PAIRS_PER_PASS`."""
    per_map = max(1, PAIRS_PER_PASS // max(n_maps, 1))
    if T * (T - 1) // 2 <= per_map:
        return [(1, T)]
    groups, k0, size = [], 1, 0
    for k in range(1, T):
        if size and size + T - k > per_map:
            groups.append((k0, k))
            k0, size = k, 0
        size += T - k
    return [*groups, (k0, T)]


def _values(C: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """C at the given flat positions of each (T, T) map, shape (..., P), float64."""
    C = np.asarray(C)
    T = C.shape[-1]
    return np.take(C.reshape(*C.shape[:-2], T * T), flat, axis=-1).astype(np.float64)


def _pair_values(C: np.ndarray) -> np.ndarray:
    """C(i, j) over the pairs i < j sorted by lag, shape (..., T(T-1)/2), float64."""
    return _values(C, _all_lags(np.shape(C)[-1])[0])


def _drift_of_pairs(
    values: np.ndarray, starts: np.ndarray, lags: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """C_TTI of each lag in a group and the drift of its pairs (sorted by lag, as ``lags``)."""
    valid = ~np.isnan(values)
    if valid.all():
        sums = np.add.reduceat(values, starts, axis=-1)
        counts = np.diff(np.r_[starts, values.shape[-1]])
    else:
        sums = np.add.reduceat(np.where(valid, values, 0.0), starts, axis=-1)
        counts = np.add.reduceat(valid, starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c_tti = sums / counts
    return c_tti, values - c_tti[..., lags - lags[0]]


def drift(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal averages and the non-equilibrium drift of a batch of maps.

    Args:
        C: two-time maps, shape (..., T, T); NaN marks missing entries.

    Returns:
        ``(C_tti, dC)``: C_TTI(k) for lags k = 1..T-1, shape (..., T-1), and dC(i, j) over the
        pairs i < j sorted by lag, shape (..., T(T-1)/2); NaN where C is NaN.
    """
    _, starts, lags = _all_lags(np.shape(C)[-1])
    return _drift_of_pairs(_pair_values(C), starts, lags)


def _group_values(
    C: np.ndarray, other: np.ndarray | None, flat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pair values of a group in both maps, NaN where either is NaN."""
    A = _values(C, flat)
    if other is None:
        return A, A
    B = _values(other, flat)
    both = np.isnan(A) | np.isnan(B)
    return np.where(both, np.nan, A), np.where(both, np.nan, B)


def phi(C: np.ndarray, C_other: np.ndarray | None = None) -> np.ndarray:
    """The non-equilibrium measure Phi of each map.

    Args:
        C: two-time maps, shape (..., T, T); NaN marks missing entries (dropped frames).
        C_other: optional second estimate of the same maps from a disjoint half of the pixels,
            same shape. When given, the split-half (noise-unbiased) Phi is returned.

    Returns:
        Phi, shape (...), in [0, 1] for the plain form; 0 for a constant map, NaN for a map
        with no finite pair. The split-half form can leave [0, 1] by noise, and is NaN where
        the halves' covariance is not positive.
    """
    shape = np.shape(C)
    T = shape[-1]
    C = np.reshape(C, (-1, T, T))
    other = None if C_other is None else np.reshape(C_other, (-1, T, T))
    step = max(1, PAIRS_PER_PASS // max(T * (T - 1) // 2, 1))  # maps per chunk
    out = np.empty(C.shape[0])
    for lo in range(0, C.shape[0], step):
        part = slice(lo, lo + step)
        out[part] = _phi_of_chunk(C[part], None if other is None else other[part])
    return out.reshape(shape[:-2])


def _phi_of_chunk(C: np.ndarray, other: np.ndarray | None) -> np.ndarray:
    """:func:`phi` of a few maps (n, T, T), over groups of lags of a bounded size."""
    T = C.shape[-1]
    groups = _lag_groups(T, C.shape[0])
    kept = None
    count, total_a, total_b = 0, 0.0, 0.0
    for k0, k1 in groups:  # pass 1: the mean over every pair
        A, B = _group_values(C, other, _lag_pairs(T, k0, k1)[0])
        kept = (A, B) if len(groups) == 1 else None
        count = count + np.sum(~np.isnan(A), axis=-1)
        total_a = total_a + np.nansum(A, axis=-1)
        total_b = total_a if other is None else total_b + np.nansum(B, axis=-1)
    numerator, denominator = 0.0, 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a, mean_b = total_a / count, total_b / count
        for k0, k1 in groups:  # pass 2: the drift and the deviations from the mean
            flat, starts, lags = _lag_pairs(T, k0, k1)
            A, B = kept if kept is not None else _group_values(C, other, flat)
            _, dA = _drift_of_pairs(A, starts, lags)
            dB = dA if other is None else _drift_of_pairs(B, starts, lags)[1]
            a0 = A - mean_a[..., None]
            b0 = a0 if other is None else B - mean_b[..., None]
            numerator = numerator + np.nansum(dA * dB, axis=-1)
            denominator = denominator + np.nansum(a0 * b0, axis=-1)
        numerator, denominator = numerator / count, denominator / count
        out = numerator / denominator
    if other is not None:
        return np.where(denominator > 0, out, np.nan)
    # A constant map is Toeplitz: no drift, Phi = 0. No finite pair at all: undefined.
    return np.where(denominator > 0, out, np.where(count > 0, 0.0, np.nan))
