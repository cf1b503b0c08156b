"""Frame sources: photon-count stacks read one band of detector rows at a time.

A frame source holds a stack of T frames of photon counts n(t, row, col) and hands out blocks of
whole frames, ``read_frames(t0, t1, rows, cols) -> (t1 - t0, n_rows, n_cols)``; ``frame_chunk``
is the number of frames per compressed chunk of the file, so that a reader taking blocks of a
multiple of it decompresses every chunk once. Two layouts:

- ``.npy`` stacks of shape (T, rows, cols), memory-mapped (``np.load(mmap_mode="r")``);
- Eiger master HDF5 files: ``entry/data/data_000001``, ``data_000002``, ... (each (T_i, rows,
  cols), often external links to data files) concatenated along frames, or a single
  ``entry/data/data``. Their metadata give the frame time, the detector's pixel mask and the
  geometry (see :class:`DetectorInfo`).
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.units import kelvin, scaled, unit_text

#: Eiger/NeXus metadata paths.
DETECTOR = "entry/instrument/detector"
FRAME_TIME = f"{DETECTOR}/frame_time"
PIXEL_MASK = f"{DETECTOR}/detectorSpecific/pixel_mask"
TEMPERATURE = "entry/sample/temperature"

_LENGTH_UNITS = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "nm": 1e-9}
_WAVELENGTH_UNITS = {"angstrom": 1.0, "a": 1.0, "å": 1.0, "nm": 10.0, "m": 1e10}
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


@dataclass(frozen=True)
class DetectorInfo:
    """What a frame file says about its measurement; None where it says nothing.

    Attributes:
        frame_time: time between frames in s.
        valid: valid pixels (True: use), shape (rows, cols), bool.
        center: beam centre (row, col) in pixels.
        pixel_size: pixel edge in micrometres.
        distance: sample-detector distance in m.
        wavelength: X-ray wavelength in Angstrom.
        temperature: sample temperature in K.
        notes: how values were read where a unit was assumed or converted, one line each.
    """

    frame_time: float | None = None
    valid: np.ndarray | None = None
    center: tuple[float, float] | None = None
    pixel_size: float | None = None
    distance: float | None = None
    wavelength: float | None = None
    temperature: float | None = None
    notes: tuple[str, ...] = ()


def _check_dtype(path: Path, where: str, dtype: np.dtype) -> None:
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise GbsbiError(f"{path}: {where} holds {dtype}, expected integer or float counts")


class NpyFrames:
    """A ``.npy`` stack of frames, memory-mapped.

    Attributes:
        path: the file.
        shape: (T, rows, cols).
        dtype: the stored count type.
        info: always empty (a ``.npy`` file carries no metadata).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise GbsbiError(f"{self.path}: no such file")
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise GbsbiError(f"{self.path}: not a readable .npy array ({err})") from None
        if not isinstance(array, np.ndarray):
            raise GbsbiError(f"{self.path}: expected one .npy array, found an archive")
        if array.ndim != 3:
            raise GbsbiError(f"{self.path}: frames must have shape (T, rows, cols), "
                             f"found {array.shape}")
        _check_dtype(self.path, "the array", array.dtype)
        self._array = array
        self.shape: tuple[int, int, int] = tuple(int(s) for s in array.shape)
        self.dtype = array.dtype
        self.info = DetectorInfo()

    #: Frames per chunk: a .npy stack is one contiguous array.
    frame_chunk = 1

    def read_frames(self, t0: int, t1: int, rows: slice, cols: slice) -> np.ndarray:
        """Counts of frames t0..t1 - 1 in a pixel block, shape (t1 - t0, n_rows, n_cols)."""
        return np.ascontiguousarray(self._array[t0:t1, rows, cols])

    def close(self) -> None:
        """Release the memory map."""
        self._array = None

    def __enter__(self) -> NpyFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scalar(f: object, path: str) -> tuple[float, str] | None:
    """A scalar dataset's value and lower-case ``units`` attribute, or None if absent."""
    import h5py

    try:
        ds = f[path]
    except (KeyError, OSError):
        return None
    if not isinstance(ds, h5py.Dataset) or ds.size != 1 or ds.dtype.kind not in "iuf":
        return None
    return float(np.asarray(ds[()]).ravel()[0]), unit_text(ds.attrs.get("units"))


class EigerFrames:
    """Frames of an Eiger master HDF5 file, blocks concatenated along frames.

    Attributes:
        path: the master file.
        shape: (T, rows, cols), T summed over the blocks.
        dtype: the stored count type.
        info: frame time, pixel mask, geometry and temperature found in the file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise GbsbiError(f"{self.path}: no such file")
        import h5py

        if importlib.util.find_spec("hdf5plugin") is not None:
            import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filters Eiger uses)
        self._notes: list[str] = []
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise GbsbiError(f"{self.path}: not a readable HDF5 file ({err})") from None
        try:
            self._blocks = self._find_blocks()
            self.info = self._read_info()
        except BaseException:
            self._file.close()
            raise

    def _find_blocks(self) -> list[tuple[str, object]]:
        import h5py

        f = self._file
        group = f.get("entry/data")
        if not isinstance(group, h5py.Group):
            raise GbsbiError(f"{self.path}: not an Eiger master file (no group entry/data)")
        names = [n for n in group if re.fullmatch(r"data_\d{6}", n)]
        names.sort(key=lambda n: int(n[5:]))
        if not names and "data" in group:
            names = ["data"]
        if not names:
            raise GbsbiError(f"{self.path}: not an Eiger master file "
                             "(no dataset entry/data/data_000001)")
        blocks = []
        for name in names:
            where = f"entry/data/{name}"
            try:
                ds = group[name]
            except (KeyError, OSError) as err:
                link = group.get(name, getlink=True)
                target = f" -> {link.filename}" if isinstance(link, h5py.ExternalLink) else ""
                raise GbsbiError(f"{self.path}: cannot open {where}{target} ({err})") from None
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
                shape = getattr(ds, "shape", "a group")
                raise GbsbiError(f"{self.path}: {where} must be frames (T, rows, cols), "
                                 f"found {shape}")
            _check_dtype(self.path, where, ds.dtype)
            if blocks and ds.shape[1:] != blocks[0][1].shape[1:]:
                raise GbsbiError(f"{self.path}: {where} has frames of {ds.shape[1:]}, "
                                 f"{blocks[0][0]} of {blocks[0][1].shape[1:]}")
            blocks.append((where, ds))
        rows, cols = blocks[0][1].shape[1:]
        self.shape = (sum(ds.shape[0] for _, ds in blocks), int(rows), int(cols))
        self.dtype = np.result_type(*(ds.dtype for _, ds in blocks))
        self.frame_chunk = max((ds.chunks[0] if ds.chunks else 1) for _, ds in blocks)
        return blocks

    def _read_info(self) -> DetectorInfo:
        f = self._file
        valid = None
        if f.get(PIXEL_MASK, getlink=True) is not None:
            try:
                node = f[PIXEL_MASK]
                if getattr(node, "shape", None) != self.shape[1:] or node.dtype.kind not in "iub":
                    found = getattr(node, "shape", "a group")
                    raise GbsbiError(f"{self.path}: {PIXEL_MASK} must be integers of shape "
                                     f"{self.shape[1:]} (the frames'), found {found}")
                valid = node[()] == 0
            except (KeyError, OSError, ValueError, TypeError) as err:
                raise GbsbiError(f"{self.path}: cannot read {PIXEL_MASK} ({err})") from None
        x, y = _scalar(f, f"{DETECTOR}/beam_center_x"), _scalar(f, f"{DETECTOR}/beam_center_y")
        return DetectorInfo(
            frame_time=self._unit(FRAME_TIME, _TIME_UNITS, "s", 1.0),
            valid=valid,
            center=(y[0], x[0]) if x and y else None,
            pixel_size=self._unit(f"{DETECTOR}/x_pixel_size", _LENGTH_UNITS, "m", 1e6),
            distance=self._unit(f"{DETECTOR}/detector_distance", _LENGTH_UNITS, "m", 1.0),
            wavelength=self._unit("entry/instrument/beam/incident_wavelength",
                                  _WAVELENGTH_UNITS, "angstrom", 1.0),
            temperature=self._temperature(),
            notes=tuple(self._notes),
        )

    def _unit(
        self, path: str, units: dict[str, float], default: str, scale: float
    ) -> float | None:
        """A scalar times its unit's factor in ``units`` times ``scale`` (no units: ``default``,
        with a note)."""
        found = _scalar(self._file, path)
        if found is None:
            return None
        value, note = scaled(*found, units, default, path)
        if value is None:
            raise GbsbiError(f"{self.path}: {note}")
        self._notes += [f"{self.path.name}: {note}"] if note else []
        return value * scale

    def _temperature(self) -> float | None:
        """The sample temperature in K, by the rule of :mod:`gbsbi.io.units` (no units: degC)."""
        found = _scalar(self._file, TEMPERATURE)
        if found is None:
            return None
        value, note = kelvin(*found, TEMPERATURE)
        if value is None:
            raise GbsbiError(f"{self.path}: {note}")
        self._notes.append(f"{self.path.name}: {note}")
        return value

    def read_frames(self, t0: int, t1: int, rows: slice, cols: slice) -> np.ndarray:
        """Counts of frames t0..t1 - 1 in a pixel block, shape (t1 - t0, n_rows, n_cols)."""
        n_rows = len(range(*rows.indices(self.shape[1])))
        n_cols = len(range(*cols.indices(self.shape[2])))
        out = np.empty((t1 - t0, n_rows, n_cols), dtype=self.dtype)
        start = 0
        for where, ds in self._blocks:
            lo, hi = max(t0, start), min(t1, start + ds.shape[0])
            if lo < hi:
                try:
                    out[lo - t0:hi - t0] = ds[lo - start:hi - start, rows, cols]
                except OSError as err:
                    raise GbsbiError(f"{self.path}: cannot read {where} ({err})") from None
            start += ds.shape[0]
        return out

    def close(self) -> None:
        """Close the HDF5 file."""
        self._file.close()

    def __enter__(self) -> EigerFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


FrameSource = NpyFrames | EigerFrames


def open_frames(path: str | os.PathLike) -> FrameSource:
    """Open a frame stack: ``.npy`` or an Eiger master HDF5 file (by its content).

    Args:
        path: the frames file.

    Returns:
        A frame source; close it (or use it as a context manager) when done.
    """
    path = Path(path)
    if not path.is_file():
        raise GbsbiError(f"{path}: no such file")
    if path.suffix == ".npy":
        return NpyFrames(path)
    import h5py

    if h5py.is_hdf5(path):
        return EigerFrames(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return EigerFrames(path)  # a damaged HDF5 file: report h5py's reason
    if head.startswith(b"\x93NUMPY"):
        return NpyFrames(path)
    raise GbsbiError(f"{path}: unknown frames format; expected a .npy stack (T, rows, cols) "
                     "or an Eiger master HDF5 file")
