r"""Put two-time maps into canonical form: full, symmetric, on a chosen frame grid.

Frame k of a grid of T frames over a window of duration W stands for the interval
[k W / T, (k + 1) W / T); its time is t_k = k W / T (the start, as in
:class:`simulators.config.ExperimentConfig`). Resampling T -> T' frames keeps the window, so in
native frame-index units the centre of new frame k sits at

.. math::

    x_k = (k + 1/2) \, T / T' - 1/2 .

Both resampling paths are one linear map per axis, C' = A C A^T with A of shape (T', T):

* binning, when T is a multiple b of T': A averages frames kb .. kb + b - 1 (the block average);
* otherwise bilinear interpolation at x_k (clipped to [0, T - 1]).

NaN entries (missing frames) are skipped by applying A to the valid entries and to their
indicator and dividing; an entry with no valid support stays NaN. The diagonal C(t, t) carries the
Poisson self-term (docs/model.md#estimator), so it never leaks into the off-diagonal entries: those
are resampled from the map with its diagonal replaced by the mean of the lag-1 neighbours C(t - 1,
t) and C(t, t + 1) (which only matters where T' > T or T' is close to T), and the new diagonal is
resampled from the native diagonal alone.
"""

from __future__ import annotations

import numpy as np

#: Relative asymmetry max |C - C^T| / (max C - min C) above which symmetrising is reported.
SYMMETRY_TOL = 1e-3


def complete_triangle(C: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Complete a map stored as one triangle (the other all zero or NaN) to the full map.

    Args:
        C: two-time map C(t1, t2), shape (T, T), float64, non-negative.

    Returns:
        The full map, shape (T, T), and "upper" or "lower" for the triangle that was stored, or
        None if the map was already full.
    """
    T = C.shape[0]
    lower = C[np.tril_indices(T, -1)]
    upper = C[np.triu_indices(T, 1)]

    def empty(values: np.ndarray) -> bool:
        return bool(np.all(np.isnan(values) | (values == 0)))

    if empty(lower) and not empty(upper):
        i, j = np.tril_indices(T, -1)
        C = C.copy()
        C[i, j] = C[j, i]
        return C, "upper"
    if empty(upper) and not empty(lower):
        i, j = np.triu_indices(T, 1)
        C = C.copy()
        C[i, j] = C[j, i]
        return C, "lower"
    return C, None


def symmetrise(C: np.ndarray) -> tuple[np.ndarray, float]:
    """Make a map exactly symmetric, (C + C^T) / 2, where one side is NaN take the other.

    Args:
        C: two-time map, shape (T, T), float64.

    Returns:
        The symmetric map, shape (T, T), and the relative asymmetry
        max |C - C^T| / (max C - min C) of the input (0 for a constant map).
    """
    Ct = C.T
    finite = ~np.isnan(C) & ~np.isnan(Ct)
    diff = np.abs(C - Ct)[finite]
    span = float(np.nanmax(C) - np.nanmin(C))
    worst = float(diff.max()) if diff.size else 0.0
    asymmetry = worst / span if span > 0 else 0.0
    both = np.where(finite, 0.5 * (C + Ct), np.where(np.isnan(C), Ct, C))
    return both, asymmetry


def binning_matrix(T: int, n_frames: int) -> np.ndarray:
    """Block-average operator from T frames to n_frames = T / b frames.

    Args:
        T: native number of frames; a multiple of n_frames.
        n_frames: target number of frames T'.

    Returns:
        A, shape (T', T), rows of b = T / T' entries 1 / b.
    """
    b = T // n_frames
    return np.kron(np.eye(n_frames), np.full((1, b), 1.0 / b))


def interpolation_matrix(T: int, n_frames: int) -> np.ndarray:
    """Linear interpolation operator from T frames to n_frames over the same window.

    Args:
        T: native number of frames, at least 2.
        n_frames: target number of frames T'.

    Returns:
        A, shape (T', T), with weights 1 - f and f on the native frames either side of
        x_k = (k + 1/2) T / T' - 1/2 (clipped to [0, T - 1]).
    """
    x = np.clip((np.arange(n_frames) + 0.5) * T / n_frames - 0.5, 0.0, T - 1.0)
    left = np.minimum(np.floor(x).astype(int), T - 2)
    frac = x - left
    A = np.zeros((n_frames, T))
    rows = np.arange(n_frames)
    A[rows, left] = 1.0 - frac
    A[rows, left + 1] += frac
    return A


def _lag_one(C: np.ndarray) -> np.ndarray:
    """Mean of C(i - 1, i) and C(i, i + 1) for each frame i (NaN-aware), shape (m, T)."""
    side = np.diagonal(C, offset=1, axis1=1, axis2=2)
    nan = np.full(side.shape[:-1] + (1,), np.nan)
    pair = np.stack([np.concatenate([nan, side], -1), np.concatenate([side, nan], -1)])
    valid = ~np.isnan(pair)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, pair, 0.0).sum(0) / valid.sum(0)


def _apply(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """C' = A C A^T over the valid entries of each map, diagonal handled on its own.

    Args:
        A: resampling operator, shape (T', T).
        C: maps, shape (m, T, T), float64, NaN for missing entries.

    Returns:
        Resampled maps, shape (m, T', T'), float64.
    """
    T = C.shape[-1]
    off = C.copy()
    off[:, np.arange(T), np.arange(T)] = _lag_one(C)
    valid = ~np.isnan(off)
    num = A @ np.where(valid, off, 0.0) @ A.T
    den = A @ valid.astype(np.float64) @ A.T
    diag = np.diagonal(C, axis1=1, axis2=2)
    dvalid = ~np.isnan(diag)
    dnum = np.where(dvalid, diag, 0.0) @ A.T
    dden = dvalid.astype(np.float64) @ A.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 1e-12, num / den, np.nan)
        new_diag = np.where(dden > 1e-12, dnum / dden, np.nan)
    out = 0.5 * (out + np.swapaxes(out, 1, 2))  # exact symmetry despite rounding
    k = np.arange(A.shape[0])
    out[:, k, k] = new_diag
    return out


def resample(C: np.ndarray, n_frames: int) -> tuple[np.ndarray, str]:
    """Resample maps onto n_frames frames over the same window.

    Args:
        C: full symmetric two-time maps, shape (m, T, T), float64, NaN for missing entries.
        n_frames: target number of frames T', at least 2.

    Returns:
        The maps on the new grid, shape (m, T', T'), float64, and what was done: "kept" (T' = T),
        "binned" (T a multiple of T') or "interpolated".
    """
    T = C.shape[-1]
    if n_frames == T:
        return C, "kept"
    if T % n_frames == 0:
        return _apply(binning_matrix(T, n_frames), C), "binned"
    return _apply(interpolation_matrix(T, n_frames), C), "interpolated"
