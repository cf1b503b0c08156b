"""The ROIs' photon counts, pixel-major, from one pass over the frames.

Frame files are written frame by frame (an Eiger file compresses each frame as a chunk), while a
two-time map needs each pixel's whole time series. :class:`PixelStore` reads the frames once, in
blocks of whole frames aligned to the file's chunks (so every compressed chunk is decompressed
exactly once), and keeps the counts of the ROI pixels only, in the order the correlator takes
them: in memory when they fit :data:`STORE_BYTES`, otherwise in an unlinked temporary file (the
system temp folder, or ``scratch``) laid out as (frame blocks, pixels, frames of the block), so
that both the writing pass and the reading of a band of pixels are sequential.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gbsbi.errors import GbsbiError

#: Counts kept in memory at most, bytes; larger stores go to a scratch file.
STORE_BYTES = 512 * 2**20
#: Memory for one block of frames read from the source, bytes.
READ_BYTES = 128 * 2**20


class PixelStore:
    """Counts n_p(t) of chosen pixels, shape (P, T), gathered in one pass over the frames.

    Args:
        source: frames (T, rows, cols) with ``read_frames(t0, t1, rows, cols)`` and
            ``frame_chunk`` (frames per compressed chunk).
        pixels: flat (row-major) detector indices, shape (P,), in the order to keep; a pixel
            may appear more than once.
        scratch: folder for the scratch file (None: the system temp folder).
        progress: called with the number of frames read after each block, or None.
    """

    def __init__(self, source: object, pixels: np.ndarray, scratch: str | os.PathLike | None,
                 progress: Callable[[int], object] | None = None) -> None:
        T, _, n_cols = source.shape
        self.T, self.P = T, int(pixels.size)
        self.dtype = np.dtype(source.dtype)
        rows, cols = np.divmod(pixels, n_cols)
        r0, r1 = int(rows.min()), int(rows.max()) + 1
        c0, c1 = int(cols.min()), int(cols.max()) + 1
        local = (rows - r0) * (c1 - c0) + (cols - c0)
        item = self.dtype.itemsize
        per_frame = ((r1 - r0) * (c1 - c0) + self.P) * item
        chunk = max(1, int(getattr(source, "frame_chunk", 1)))
        block = max(chunk, READ_BYTES // per_frame // chunk * chunk)
        self.in_memory = self.P * T * item <= STORE_BYTES
        self.block = T if self.in_memory else min(block, T)  # frames per slab of the store
        step = block if self.in_memory else self.block  # frames per read
        self._blocks = -(-T // self.block)
        self._data = np.empty((1, self.P, T), dtype=self.dtype) if self.in_memory else None
        self._file = None if self.in_memory else self._scratch(scratch)
        try:
            for t0 in range(0, T, step):
                t1 = min(t0 + step, T)
                frames = source.read_frames(t0, t1, slice(r0, r1), slice(c0, c1))
                values = frames.reshape(t1 - t0, -1)[:, local].T  # (P, frames)
                if self.in_memory:
                    self._data[0, :, t0:t1] = values
                else:
                    self._write(values)
                if progress is not None:
                    progress(t1 - t0)
            if not self.in_memory:
                self._file.flush()
        except BaseException:
            self.close()
            raise

    def _scratch(self, folder: str | os.PathLike | None) -> BinaryIO:
        """An unlinked temporary file for the store, checked against the free space."""
        folder = Path(folder or tempfile.gettempdir())
        size = self._blocks * self.P * self.block * self.dtype.itemsize
        try:
            free = shutil.disk_usage(folder).free
        except OSError as err:
            raise GbsbiError(f"scratch folder {folder}: {err.strerror}") from None
        if free < size:
            raise GbsbiError(
                f"scratch folder {folder} has {free / 2**30:.3g} GiB free; the ROI pixels' "
                f"counts need {size / 2**30:.3g} GiB (pass --scratch DIR)"
            )
        return tempfile.TemporaryFile(dir=folder)

    def _write(self, values: np.ndarray) -> None:
        """Append one slab (P, block) of frames to the scratch file, zero-padded at the end."""
        slab = values
        if values.shape[1] < self.block:
            slab = np.zeros((self.P, self.block), dtype=self.dtype)
            slab[:, : values.shape[1]] = values
        try:
            self._file.write(np.ascontiguousarray(slab).data)
        except OSError as err:
            raise GbsbiError(f"cannot write the scratch file ({err.strerror}); pass --scratch "
                             "DIR on a disk with more room") from None

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Counts of pixels lo..hi - 1 of the store, shape (T, hi - lo), in the source's count
        type, C-ordered. From a scratch file the slabs are read with plain file reads (no memory
        map), so the process holds only the band, not the file's pages."""
        k = hi - lo
        if self.in_memory:
            return np.ascontiguousarray(self._data[0, lo:hi, :].T)
        out = np.empty((self._blocks * self.block, k), dtype=self.dtype)
        item = self.dtype.itemsize
        for b in range(self._blocks):
            offset = ((b * self.P) + lo) * self.block * item
            data = os.pread(self._file.fileno(), k * self.block * item, offset)
            slab = np.frombuffer(data, dtype=self.dtype).reshape(k, self.block)
            out[b * self.block:(b + 1) * self.block] = slab.T
        return out[: self.T]

    def close(self) -> None:
        """Release the memory and the scratch file."""
        self._data = None
        if self._file is not None:
            self._file.close()
            self._file = None
