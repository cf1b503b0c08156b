r"""The chunked two-time correlator.

For an ROI with pixels p = 1..N and photon counts n_p(t), the standard estimator (SPEC section 2)

.. math::

    C(t_1, t_2) = \frac{\langle n_p(t_1) n_p(t_2) \rangle_p}
                       {\langle n_p(t_1) \rangle_p \langle n_p(t_2) \rangle_p}
                = \frac{N\, G(t_1, t_2)}{S(t_1)\, S(t_2)},
    \qquad G = \sum_p n_p n_p^\top, \quad S(t) = \sum_p n_p(t).

The Gram matrix G (T x T, by BLAS syrk) and the frame sums S are accumulated in float64 over
bands of detector rows: one (T x band pixels) block is read at a time, so memory is about
T x chunk_pixels counts plus the T x T accumulators, whatever the number of frames times pixels.
Integer counts make every partial sum exact in float64 (below 2^53), so the result does not
depend on the chunk size.

The diagonal C(t, t) keeps the Poisson self-term (Phi excludes it). Every ROI is accumulated as
two disjoint checkerboard halves a and b (G = G_a + G_b, S = S_a + S_b), giving the two half-maps
of the split-half Phi at no extra cost. Frames that are dropped (flagged, or with no count in any
ROI) are NaN rows and columns; so are frames where one map has no count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dsyrk
from tqdm import tqdm

from gbsbi.correlator.frames import FrameSource
from gbsbi.correlator.roi import Roi
from gbsbi.errors import GbsbiError

#: Default memory for one band of counts and its float64 copy, bytes (sets the chunk size).
BAND_BYTES = 256 * 2**20


def auto_chunk_pixels(n_frames: int, itemsize: int, band_bytes: int = BAND_BYTES) -> int:
    """Pixels per band such that a band of counts plus its float64 copy fits ``band_bytes``.

    Args:
        n_frames: number of frames T.
        itemsize: bytes per stored count.
        band_bytes: memory budget in bytes.

    Returns:
        chunk_pixels = band_bytes / (T (itemsize + 8)), at least 1.
    """
    return max(1, band_bytes // (n_frames * (itemsize + 8)))


@dataclass(frozen=True)
class TwoTime:
    """Two-time maps of several ROIs from one pass over the frames.

    Attributes:
        C: two-time maps C(t1, t2), shape (n, T, T), float64; NaN rows/cols for dropped frames.
        C_half_a: maps from checkerboard half a of each ROI's pixels, shape (n, T, T).
        C_half_b: maps from half b, shape (n, T, T).
        mean_counts: mean counts per pixel <n_p(t)>_p, shape (n, T); NaN for dropped frames.
        n_pixels: pixels used in each half (a, b), shape (n, 2), int64.
        n_excluded: ROI pixels excluded for holding the count type's maximum (the Eiger gap and
            overflow marker) in some frame, shape (n,), int64.
        dropped: frames dropped from every map, shape (T,), bool.
        names: ROI names, length n.
        q: ROI mean q in nm^-1, shape (n,).
    """

    C: np.ndarray
    C_half_a: np.ndarray
    C_half_b: np.ndarray
    mean_counts: np.ndarray
    n_pixels: np.ndarray
    n_excluded: np.ndarray
    dropped: np.ndarray
    names: tuple[str, ...]
    q: np.ndarray


def _gram_update(G: np.ndarray, X: np.ndarray) -> None:
    """G += X X^T on the upper triangle of G, in place (BLAS syrk: half the work of a product).

    Args:
        G: Gram matrix, shape (T, T), float64, C-contiguous; only its upper triangle is valid.
        X: counts of a block of pixels, shape (T, k), float64, C-contiguous.
    """
    # G.T is Fortran-ordered, so syrk updates it in place; its lower triangle is G's upper.
    out = dsyrk(1.0, X.T, beta=1.0, c=G.T, trans=1, lower=1, overwrite_c=1)
    if not np.shares_memory(out, G):  # pragma: no cover - scipy always works in place here
        G.T[...] = out


def _symmetrise(G: np.ndarray) -> None:
    """Copy the upper triangle of each (T, T) matrix in G to its lower one, in place."""
    for g in G.reshape(-1, *G.shape[-2:]):
        for i in range(1, g.shape[0]):
            g[i, :i] = g[:i, i]


def _normalise(G: np.ndarray, S: np.ndarray, N: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """C = N G / (S S^T) in place of G, with NaN rows/cols for dropped or empty frames.

    Args:
        G: Gram matrices, shape (..., T, T), float64; overwritten.
        S: frame sums, shape (..., T).
        N: pixel counts, shape (...).
        dropped: frames to blank, shape (T,), bool.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        G *= N[..., None, None]
        G /= S[..., :, None]
        G /= S[..., None, :]
    bad = dropped | (S == 0)
    for index in np.ndindex(G.shape[:-2]):
        G[index][bad[index], :] = np.nan
        G[index][:, bad[index]] = np.nan
    return G


def _overflow_marker(dtype: np.dtype) -> int | None:
    """The value that marks gap or overflowed pixels: an unsigned type's maximum."""
    return int(np.iinfo(dtype).max) if np.issubdtype(dtype, np.unsignedinteger) else None


def _check_counts(X: np.ndarray, source: FrameSource, roi: Roi, rows: tuple[int, int]) -> None:
    """Reject negative or non-finite counts in an ROI block (signed and float stacks)."""
    if np.issubdtype(X.dtype, np.unsignedinteger) or X.size == 0:
        return
    where = f"ROI {roi.name}, detector rows {rows[0]}-{rows[1] - 1}"
    if np.issubdtype(X.dtype, np.floating) and not np.all(np.isfinite(X)):
        raise GbsbiError(f"{source.path}: non-finite counts in {where}; mask those pixels")
    low = X.min()
    if low < 0:
        raise GbsbiError(f"{source.path}: negative counts (min {low}) in {where}; counts must "
                         "be >= 0 (mask marker pixels with --mask)")


def correlate(
    source: FrameSource,
    rois: Sequence[Roi],
    chunk_pixels: int | None = None,
    dropped: np.ndarray | None = None,
    progress: bool = False,
) -> TwoTime:
    """Two-time maps of several ROIs in one pass over bands of detector rows.

    Args:
        source: frames n(t, row, col), shape (T, rows, cols), read by pixel blocks.
        rois: the regions; they may overlap. Their ``shape`` must be the frames' (rows, cols).
        chunk_pixels: detector pixels read per band (at least one row of the ROIs' bounding
            box); memory is about T x chunk_pixels x (itemsize + 8) bytes plus the accumulators,
            3n T^2 x 8 bytes. None: :func:`auto_chunk_pixels` (a 256 MiB band).
        dropped: frames flagged as bad, shape (T,), bool, or None.
        progress: show a progress bar over bands (only on a terminal).

    Returns:
        The maps, their half-maps and the pixel bookkeeping.
    """
    T, n_rows, n_cols = source.shape
    if not rois:
        raise GbsbiError("no ROI to correlate")
    for roi in rois:
        if roi.shape != (n_rows, n_cols):
            raise GbsbiError(f"{source.path}: frames are {n_rows}x{n_cols} pixels, ROI "
                             f"{roi.name} was built for {roi.shape[0]}x{roi.shape[1]}")
    if T < 2:
        raise GbsbiError(f"{source.path}: {T} frame(s); a two-time map needs at least 2")
    flagged = np.zeros(T, dtype=bool) if dropped is None else np.asarray(dropped, dtype=bool)
    if flagged.shape != (T,):
        raise GbsbiError(f"dropped-frame flags have shape {flagged.shape}, expected ({T},)")
    if chunk_pixels is None:
        chunk_pixels = auto_chunk_pixels(T, np.dtype(source.dtype).itemsize)
    if chunk_pixels < 1:
        raise GbsbiError(f"chunk size must be >= 1 pixel, got {chunk_pixels}")

    # Each ROI half as (rows, cols) of its pixels, row-major sorted.
    parts = [[np.divmod(roi.pixels[roi.half == h], n_cols) for h in (False, True)]
             for roi in rois]
    every = np.concatenate([roi.pixels for roi in rois])
    r_lo, r_hi = int(every.min() // n_cols), int(every.max() // n_cols) + 1
    every_cols = every % n_cols
    c_lo, c_hi = int(every_cols.min()), int(every_cols.max()) + 1
    width = c_hi - c_lo
    band = max(1, chunk_pixels // width)
    occupied = np.unique(every // n_cols)  # rows holding ROI pixels; skip bands without any
    starts = [int(r_lo + i * band) for i in np.unique((occupied - r_lo) // band)]

    n = len(rois)
    G = np.zeros((n, 2, T, T))
    S = np.zeros((n, 2, T))
    N = np.zeros((n, 2), dtype=np.int64)
    excluded = np.zeros(n, dtype=np.int64)
    marker = _overflow_marker(source.dtype)
    for r0 in tqdm(starts, desc="correlate", unit="band", disable=None if progress else True):
        r1 = min(r0 + band, r_hi)
        block = source.read(slice(r0, r1), slice(c_lo, c_hi)).reshape(T, -1)
        for k, roi in enumerate(rois):
            for h, (rr, cc) in enumerate(parts[k]):
                lo, hi = np.searchsorted(rr, (r0, r1))
                if lo == hi:
                    continue
                X = block[:, (rr[lo:hi] - r0) * width + (cc[lo:hi] - c_lo)]
                _check_counts(X, source, roi, (r0, r1))
                if marker is not None:  # flagged frames may be filled with the marker
                    keep = ~np.any(X[~flagged] == marker, axis=0)
                    excluded[k] += X.shape[1] - np.count_nonzero(keep)
                    X = X[:, keep]
                if X.shape[1] == 0:
                    continue
                X = X.astype(np.float64)
                _gram_update(G[k, h], X)
                S[k, h] += X.sum(axis=1)
                N[k, h] += X.shape[1]
    for k, roi in enumerate(rois):
        if np.any(N[k] == 0):
            raise GbsbiError(f"ROI {roi.name}: no usable pixel left in a checkerboard half "
                             f"({excluded[k]} pixels hold the overflow marker {marker})")

    _symmetrise(G)
    S_total = S.sum(axis=1)
    all_dropped = flagged | (S_total.sum(axis=0) == 0)
    C = _normalise(G.sum(axis=1), S_total, N.sum(axis=1), all_dropped)
    halves = _normalise(G, S, N, all_dropped)
    return TwoTime(
        C=C,
        C_half_a=halves[:, 0],
        C_half_b=halves[:, 1],
        mean_counts=np.where(all_dropped, np.nan, S_total / N.sum(axis=1)[:, None]),
        n_pixels=N,
        n_excluded=excluded,
        dropped=all_dropped,
        names=tuple(roi.name for roi in rois),
        q=np.array([roi.q for roi in rois], dtype=np.float64),
    )
