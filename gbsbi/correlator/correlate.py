r"""The chunked two-time correlator.

For an ROI with pixels p = 1..N and photon counts n_p(t), the standard estimator

.. math::

    C(t_1, t_2) = \frac{\langle n_p(t_1) n_p(t_2) \rangle_p}
                       {\langle n_p(t_1) \rangle_p \langle n_p(t_2) \rangle_p}
                = \frac{N\, G(t_1, t_2)}{S(t_1)\, S(t_2)},
    \qquad G = \sum_p n_p n_p^\top, \quad S(t) = \sum_p n_p(t)

(``simulators.measurement.two_time``, shared with the measurement model).

Two steps. (1) One pass over the frames gathers every ROI pixel's counts, pixel-major
(:class:`~gbsbi.correlator.store.PixelStore`): each frame, and so each compressed chunk of an
Eiger file, is read once. (2) ROI by ROI, the Gram matrix G (T x T, by BLAS syrk) and the frame
sums S of each checkerboard half are accumulated in float64 over bands of ``chunk_pixels``
pixels. Integer counts make every partial sum exact in float64 (below 2^53), so the result does
not depend on the chunk size. The maps are then normalised into float32, one at a time.

Memory: the two float64 accumulators of one ROI (2 T^2 x 8 bytes), one float32 map (T^2 x 4), a
band (T x chunk_pixels x (itemsize + 8)) and the store when it is kept in memory (at most 512
MiB; beyond, a scratch file): about 2.5 GB at 10,000 frames, whatever the number of ROIs and
pixels.

The diagonal C(t, t) keeps the Poisson self-term (Phi excludes it). Every ROI is accumulated as
two disjoint checkerboard halves a and b (G = G_a + G_b, S = S_a + S_b), giving the two half-maps
of the split-half Phi at no extra cost. Frames that are flagged are NaN rows and columns; so are
frames where a map has no count (a frame with no count in any ROI is reported as dropped).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gbsbi.correlator.frames import FrameSource
from gbsbi.correlator.roi import Roi
from gbsbi.correlator.store import PixelStore
from gbsbi.errors import GbsbiError
from simulators.measurement import two_time

#: Default memory for one band of counts and its float64 copy, bytes (sets the chunk size).
BAND_BYTES = 256 * 2**20
#: Largest accumulators of one ROI (two float64 T x T matrices), bytes: 32,768 frames.
MAX_ACCUMULATOR_BYTES = 16 * 2**30
#: The three maps of an ROI, in the order :meth:`RoiMaps.map` computes them.
MAP_NAMES = ("C_half_a", "C_half_b", "C")


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
    """Two-time maps of several ROIs.

    Attributes:
        C: two-time maps C(t1, t2), shape (n, T, T), float32; NaN rows/cols for dropped frames.
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


class RoiMaps:
    """The accumulated sums of one ROI; its three maps are computed on demand, one at a time.

    Attributes:
        roi: the region.
        sums: frame sums S of halves a and b, shape (2, T), float64.
        n_pixels: pixels used in each half, shape (2,), int64.
        n_excluded: pixels excluded for holding the overflow marker.
    """

    def __init__(self, roi: Roi, grams: np.ndarray, sums: np.ndarray, n_pixels: np.ndarray,
                 n_excluded: int, flagged: np.ndarray) -> None:
        self.roi, self.sums, self.n_pixels, self.n_excluded = roi, sums, n_pixels, n_excluded
        self._grams, self._flagged = grams, flagged

    def map(self, name: str) -> np.ndarray:
        """``C_half_a``, ``C_half_b`` or ``C`` (call them in that order: C consumes the sums of
        the halves), shape (T, T), float32."""
        T = self.sums.shape[1]
        out = np.empty((T, T), dtype=np.float32)
        if name == "C":
            gram = self._grams[0]
            gram += self._grams[1]
            self._grams = None
            return two_time(gram, self.sums.sum(axis=0), self.n_pixels.sum(), self._flagged, out)
        h = MAP_NAMES.index(name)
        return two_time(self._grams[h], self.sums[h], self.n_pixels[h], self._flagged, out)


def _gram_update(G: np.ndarray, X: np.ndarray) -> None:
    """G += X X^T on the upper triangle of G, in place (BLAS syrk: half the work of a product).

    Args:
        G: Gram matrix, shape (T, T), float64, C-contiguous; only its upper triangle is valid.
        X: counts of a block of pixels, shape (T, k), float64, C-contiguous.
    """
    from scipy.linalg.blas import dsyrk

    # G.T is Fortran-ordered, so syrk updates it in place; its lower triangle is G's upper.
    out = dsyrk(1.0, X.T, beta=1.0, c=G.T, trans=1, lower=1, overwrite_c=1)
    if not np.shares_memory(out, G):  # pragma: no cover - scipy always works in place here
        G.T[...] = out


def _symmetrise(g: np.ndarray, block: int = 256) -> None:
    """Copy the upper triangle of a (T, T) matrix to its lower one, in place, by blocks."""
    T = g.shape[0]
    for r0 in range(0, T, block):
        r1 = min(r0 + block, T)
        g[r0:r1, :r0] = g[:r0, r0:r1].T
        square = g[r0:r1, r0:r1]
        square[...] = np.triu(square) + np.triu(square, 1).T


def _overflow_marker(dtype: np.dtype) -> int | None:
    """The value that marks gap or overflowed pixels: an unsigned type's maximum."""
    return int(np.iinfo(dtype).max) if np.issubdtype(dtype, np.unsignedinteger) else None


def _check_counts(X: np.ndarray, source: FrameSource, roi: Roi, floating: bool) -> None:
    """Reject negative or non-finite counts in an ROI band (signed and float stacks)."""
    if X.size == 0:
        return
    if floating and not np.all(np.isfinite(X)):
        raise GbsbiError(f"{source.path}: non-finite counts in ROI {roi.name}; mask those "
                         "pixels")
    low = X.min()
    if low < 0:
        raise GbsbiError(f"{source.path}: negative counts (min {low:g}) in ROI {roi.name}; "
                         "counts must be >= 0 (mask marker pixels with --mask)")


def _check(source: FrameSource, rois: Sequence[Roi], dropped: np.ndarray | None) -> np.ndarray:
    """The ROIs against the frames, and the flags of dropped frames, shape (T,), bool."""
    T, n_rows, n_cols = source.shape
    if not rois:
        raise GbsbiError("no ROI to correlate")
    for roi in rois:
        if roi.shape != (n_rows, n_cols):
            raise GbsbiError(f"{source.path}: frames are {n_rows}x{n_cols} pixels, ROI "
                             f"{roi.name} was built for {roi.shape[0]}x{roi.shape[1]}")
    if T < 2:
        raise GbsbiError(f"{source.path}: {T} frame(s); a two-time map needs at least 2")
    if 2 * T * T * 8 > MAX_ACCUMULATOR_BYTES:
        raise GbsbiError(f"{source.path}: {T} frames need {2 * T * T * 8 / 2**30:.3g} GiB of "
                         f"accumulators per ROI (at most {MAX_ACCUMULATOR_BYTES / 2**30:.3g} "
                         "GiB); correlate fewer frames at a time")
    flagged = np.zeros(T, dtype=bool) if dropped is None else np.asarray(dropped, dtype=bool)
    if flagged.shape != (T,):
        raise GbsbiError(f"dropped-frame flags have shape {flagged.shape}, expected ({T},)")
    return flagged


def correlate_rois(
    source: FrameSource,
    rois: Sequence[Roi],
    chunk_pixels: int | None = None,
    dropped: np.ndarray | None = None,
    progress: bool = False,
    scratch: str | os.PathLike | None = None,
) -> Iterator[RoiMaps]:
    """The accumulated sums of each ROI, ROI by ROI, after one pass over the frames.

    Args:
        source: frames n(t, row, col), shape (T, rows, cols).
        rois: the regions; they may overlap. Their ``shape`` must be the frames' (rows, cols).
        chunk_pixels: ROI pixels per band (memory about T x chunk_pixels x (itemsize + 8)
            bytes); None: :func:`auto_chunk_pixels` (a 256 MiB band).
        dropped: frames flagged as bad, shape (T,), bool, or None.
        progress: show progress bars (only on a terminal).
        scratch: folder for the scratch file of the pixels' counts when they do not fit in
            memory (None: the system temp folder).

    Yields:
        One :class:`RoiMaps` per ROI, in order.
    """
    from gbsbi.progress import progress_bar

    flagged = _check(source, rois, dropped)
    T = source.shape[0]
    if chunk_pixels is None:
        chunk_pixels = auto_chunk_pixels(T, np.dtype(source.dtype).itemsize)
    if chunk_pixels < 1:
        raise GbsbiError(f"chunk size must be >= 1 pixel, got {chunk_pixels}")
    halves = [(roi.pixels[~roi.half], roi.pixels[roi.half]) for roi in rois]
    order = np.concatenate([part for pair in halves for part in pair])
    bounds = np.r_[0, np.cumsum([part.size for pair in halves for part in pair])]
    show = None if progress else False
    with progress_bar(T, "read frames", "frame", show) as bar:
        store = PixelStore(source, order, scratch, progress=bar.update)
    marker = _overflow_marker(source.dtype)
    floating = np.issubdtype(source.dtype, np.floating)
    signed = not np.issubdtype(source.dtype, np.unsignedinteger)
    sizes = np.diff(bounds)
    bands = int(np.sum(-(-sizes // chunk_pixels)))
    try:
        with progress_bar(bands, "correlate", "band", show) as bar:
            for k, roi in enumerate(rois):
                grams = np.zeros((2, T, T))
                sums = np.zeros((2, T))
                n_pixels = np.zeros(2, dtype=np.int64)
                excluded = 0
                for h in (0, 1):
                    lo, hi = int(bounds[2 * k + h]), int(bounds[2 * k + h + 1])
                    for p0 in range(lo, hi, chunk_pixels):
                        counts = store.read(p0, min(p0 + chunk_pixels, hi))  # (T, k), raw
                        bar.update()
                        if signed:
                            _check_counts(counts, source, roi, floating)
                        if marker is not None:  # flagged frames may be filled with the marker
                            marked = counts == marker
                            marked[flagged] = False
                            keep = ~marked.any(axis=0)
                            del marked
                            excluded += counts.shape[1] - int(np.count_nonzero(keep))
                            if not keep.all():
                                counts = counts[:, keep]
                        if counts.shape[1] == 0:
                            continue
                        X = counts.astype(np.float64)  # C-ordered, the only float64 copy
                        del counts
                        _gram_update(grams[h], X)
                        sums[h] += X.sum(axis=1)
                        n_pixels[h] += X.shape[1]
                if np.any(n_pixels == 0):
                    raise GbsbiError(f"ROI {roi.name}: no usable pixel left in a checkerboard "
                                     f"half ({excluded} pixels hold the overflow marker "
                                     f"{marker})")
                _symmetrise(grams[0])
                _symmetrise(grams[1])
                yield RoiMaps(roi, grams, sums, n_pixels, excluded, flagged)
                del grams  # no other name holds them: freed before the next ROI's are made
    finally:
        store.close()


def dropped_frames(flagged: np.ndarray, sums: Sequence[np.ndarray]) -> np.ndarray:
    """Frames dropped from every map: flagged, or without a count in any ROI, shape (T,)."""
    return np.asarray(flagged, dtype=bool) | (np.sum([s.sum(axis=0) for s in sums], 0) == 0)


def mean_counts(sums: np.ndarray, n_pixels: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """Mean counts per pixel <n_p(t)>_p of one ROI, shape (T,); NaN for dropped frames."""
    return np.where(dropped, np.nan, sums.sum(axis=0) / n_pixels.sum())


def correlate(
    source: FrameSource,
    rois: Sequence[Roi],
    chunk_pixels: int | None = None,
    dropped: np.ndarray | None = None,
    progress: bool = False,
    scratch: str | os.PathLike | None = None,
) -> TwoTime:
    """Two-time maps of several ROIs, every map in memory (:func:`correlate_rois` streams them).

    Args:
        source: frames n(t, row, col), shape (T, rows, cols).
        rois: the regions; they may overlap.
        chunk_pixels: ROI pixels per band; None: :func:`auto_chunk_pixels`.
        dropped: frames flagged as bad, shape (T,), bool, or None.
        progress: show progress bars (only on a terminal).
        scratch: folder for the scratch file (None: the system temp folder).

    Returns:
        The maps, their half-maps and the pixel bookkeeping.
    """
    flagged = _check(source, rois, dropped)
    maps, sums, n_pixels, excluded = {name: [] for name in MAP_NAMES}, [], [], []
    for result in correlate_rois(source, rois, chunk_pixels, flagged, progress, scratch):
        for name in MAP_NAMES:
            maps[name].append(result.map(name))
        sums.append(result.sums)
        n_pixels.append(result.n_pixels)
        excluded.append(result.n_excluded)
    all_dropped = dropped_frames(flagged, sums)
    return TwoTime(
        C=np.stack(maps["C"]),
        C_half_a=np.stack(maps["C_half_a"]),
        C_half_b=np.stack(maps["C_half_b"]),
        mean_counts=np.stack([mean_counts(s, n, all_dropped)
                              for s, n in zip(sums, n_pixels, strict=True)]),
        n_pixels=np.stack(n_pixels),
        n_excluded=np.array(excluded, dtype=np.int64),
        dropped=all_dropped,
        names=tuple(roi.name for roi in rois),
        q=np.array([roi.q for roi in rois], dtype=np.float64),
    )
