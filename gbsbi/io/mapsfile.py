"""The maps interchange file (docs/maps-file.md).

Every command that takes experimental maps reads this HDF5 layout and every importer writes it:

==================  =======================  ==============================================
path                type                     meaning
==================  =======================  ==============================================
attr ``format``     str ``gbsbi-maps``       identifies the file
attr ``version``    int, 1                   layout version
``C``               float32 (n, T, T)        full symmetric two-time maps, NaN = missing
``t``               float64 (T,)             frame times in s from the start of the window
``temperature``     float64 (n,)             K
``q``               float64 (n,)             nm^-1
``scan``            str (n,), optional       scan identifiers
``group``           str (n,), optional       material or grain-size group
``theta``           float64 (n, 3), optional true (D, sigma, c) where known
``age``             float64 (n,), optional   s since the start of the measurement at the
                                             window's first frame (absent: 0)
==================  =======================  ==============================================

Reading is defensive, since a maps file may come from anywhere: :func:`open_maps_file` checks the
root attributes, that every dataset resolves (no dangling link), holds numbers (or text) and has
the shape its role implies, and that ``C`` is not larger than :data:`MAX_MAPS_BYTES`, all before
a byte of data is read; a failure is one :class:`~gbsbi.errors.GbsbiError` naming the file, the
dataset, and the shape or value expected and found.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import atomic_path
from gbsbi.io.rawmaps import one_line

if TYPE_CHECKING:  # h5py loads when a file is opened, not for `gbsbi --help`
    import h5py

FORMAT = "gbsbi-maps"
VERSION = 1
#: Largest ``C`` a reader takes, in bytes as float32 (the size of a dataset is what its header
#: declares, so an absurd one is refused before it is read): 64 maps of 8,192 frames.
MAX_MAPS_BYTES = 16 * 2**30
#: Datasets of one value per map: name -> trailing shape, and whether it holds text.
PER_MAP = {"temperature": ((), False), "q": ((), False), "scan": ((), True),
           "group": ((), True), "theta": ((3,), False), "age": ((), False)}


@dataclass(frozen=True)
class Maps:
    """A set of two-time maps with their conditions.

    Attributes:
        C: two-time maps C(t1, t2), shape (n, T, T), float32, NaN for missing frames.
        t: frame times in s, shape (T,).
        temperature: temperature T of each map in K, shape (n,).
        q: momentum transfer of each map in nm^-1, shape (n,).
        scan: scan identifiers, shape (n,), or None.
        group: material or grain-size groups, shape (n,), or None.
        theta: true (D [nm^2/s], sigma [J/m^2], c [1]) where known, shape (n, 3), or None.
        age: each map's age t_w in s (the start of its window since the start of the
            measurement), shape (n,), or None for 0.
    """

    C: np.ndarray
    t: np.ndarray
    temperature: np.ndarray
    q: np.ndarray
    scan: np.ndarray | None = None
    group: np.ndarray | None = None
    theta: np.ndarray | None = None
    age: np.ndarray | None = None

    def __post_init__(self) -> None:
        C = np.asarray(self.C, dtype=np.float32)
        if C.ndim != 3 or C.shape[1] != C.shape[2]:
            raise GbsbiError(f"maps must have shape (n, T, T), found {C.shape}")
        n, T = C.shape[0], C.shape[1]
        object.__setattr__(self, "C", C)
        expected = {"t": (T,), "temperature": (n,), "q": (n,)}
        for name, shape in expected.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise GbsbiError(f"{name} must have shape {shape}, found {value.shape}")
            object.__setattr__(self, name, value)
        for name in ("scan", "group"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=str)
                if value.shape != (n,):
                    raise GbsbiError(f"{name} must have shape ({n},), found {value.shape}")
                object.__setattr__(self, name, value)
        if self.theta is not None:
            theta = np.asarray(self.theta, dtype=np.float64)
            if theta.shape != (n, 3):
                raise GbsbiError(f"theta must have shape ({n}, 3), found {theta.shape}")
            object.__setattr__(self, "theta", theta)
        if self.age is not None:
            age = np.asarray(self.age, dtype=np.float64)
            if age.shape != (n,):
                raise GbsbiError(f"age must have shape ({n},), found {age.shape}")
            if not (np.all(np.isfinite(age)) and np.all(age >= 0)):
                raise GbsbiError("age must be finite and >= 0 s")
            object.__setattr__(self, "age", age)

    @property
    def ages(self) -> np.ndarray:
        """Each map's age in s, shape (n,): 0 where the file records none."""
        return np.zeros(len(self)) if self.age is None else self.age

    def __len__(self) -> int:
        return self.C.shape[0]

    def names(self) -> np.ndarray:
        """The scans' names (:func:`scan_names`), shape (n,)."""
        return scan_names(self.scan, len(self))


def scan_names(scan: np.ndarray | None, n: int) -> np.ndarray:
    """Scan names as Python strings (an object array, so that a message prints ``'name'``,
    not ``np.str_('name')``): a file's ``scan`` dataset, or ``map 0``, ``map 1`` ... for a
    file without one; shape (n,)."""
    names = [str(s) for s in scan] if scan is not None else [f"map {k}" for k in range(n)]
    out = np.empty(len(names), dtype=object)
    out[:] = names
    return out


def map_chunks(T: int) -> tuple[int, int, int]:
    """HDF5 chunks of an (n, T, T) maps dataset: one map, or rows of it for long maps, so that
    a chunk holds at most 2^20 values (4 MiB of float32)."""
    return (1, min(T, max(1, 2**20 // T)), T)


def create_maps(f: h5py.File, n: int, t: np.ndarray, temperature: np.ndarray, q: np.ndarray,
                attrs: dict | None = None) -> h5py.Dataset:
    """Start a maps file in the open HDF5 file ``f``: root attributes, t, temperature, q and an
    empty ``C`` (n, T, T) float32 chunked by map, to be filled map by map.

    Returns:
        The ``C`` dataset.
    """
    f.attrs["format"] = FORMAT
    f.attrs["version"] = VERSION
    for key, value in (attrs or {}).items():
        f.attrs[key] = value
    T = len(t)
    f["t"] = np.asarray(t, dtype=np.float64)
    f["temperature"] = np.asarray(temperature, dtype=np.float64)
    f["q"] = np.asarray(q, dtype=np.float64)
    return f.create_dataset("C", (n, T, T), dtype=np.float32, chunks=map_chunks(T),
                            compression="gzip", shuffle=True)


def write_maps(
    path: str | os.PathLike,
    maps: Maps,
    attrs: dict | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``maps`` to ``path`` atomically (no partial file on failure).

    Args:
        path: output HDF5 file.
        maps: the maps and their conditions.
        attrs: extra root attributes (for example ``config`` JSON and its ``config_hash``).
        extra: extra datasets with a leading axis of length n (for example ``phi`` (n,) or the
            split-half maps ``C_half_a`` (n, T, T)).
    """
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        T = maps.C.shape[1]
        create_maps(f, len(maps), maps.t, maps.temperature, maps.q, attrs)[...] = maps.C
        for name in ("scan", "group"):
            value = getattr(maps, name)
            if value is not None:
                f.create_dataset(name, data=value.astype(object), dtype=h5py.string_dtype())
        if maps.theta is not None:
            f["theta"] = maps.theta
        if maps.age is not None:
            f["age"] = maps.age
        for name, value in (extra or {}).items():
            value = np.asarray(value)
            chunks = map_chunks(T) if value.shape[1:] == (T, T) else None
            f.create_dataset(name, data=value, chunks=chunks)


def _text(value: object) -> object:
    """An attribute as text when it is text (str, bytes, or one of them in an array)."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "SUO":
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", "replace")
    return value.item() if isinstance(value, np.generic) else value


def _integer(value: object) -> int | None:
    """An attribute as an integer when it is one (an integral float counts), else None."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and np.isfinite(value) and value == int(value):
        return int(value)
    return None


class MapsReader:
    """An open maps file whose layout has been checked; datasets are read on demand.

    Attributes:
        path: the file.
        n: number of maps.
        T: frames per map.
    """

    def __init__(self, path: Path, f: h5py.File) -> None:
        self.path, self._file = path, f
        fmt = _text(f.attrs.get("format"))
        if fmt != FORMAT:
            raise GbsbiError(
                f"{path}: not a gbsbi maps file (root attribute 'format' is {fmt!r}, expected "
                f"{FORMAT!r}); convert it with `gbsbi import`"
            )
        raw = f.attrs.get("version")
        version = _integer(raw)
        if version is None:
            raise GbsbiError(f"{path}: root attribute 'version' is {_text(raw)!r}, expected the "
                             f"integer {VERSION}")
        if version != VERSION:
            raise GbsbiError(f"{path}: maps file version {version}, this gbsbi reads {VERSION}")
        C = self._dataset("C", text=False)
        if C.ndim != 3 or C.shape[1] != C.shape[2]:
            raise GbsbiError(f"{path}: dataset 'C' must have shape (n, T, T), found {C.shape}")
        self.n, self.T = int(C.shape[0]), int(C.shape[1])
        if self.n < 1 or self.T < 2:
            raise GbsbiError(f"{path}: dataset 'C' has shape {C.shape}; a maps file needs at "
                             "least one map of at least 2 frames")
        size = self.n * self.T * self.T * 4
        if size > MAX_MAPS_BYTES:
            raise GbsbiError(f"{path}: dataset 'C' declares shape {C.shape}, {size / 2**30:.3g} "
                             f"GiB as float32; this reader takes at most "
                             f"{MAX_MAPS_BYTES / 2**30:.3g} GiB")
        self._check_shape("t", self._dataset("t", text=False), (self.T,))
        for name in ("temperature", "q"):
            self._check_shape(name, self._dataset(name, text=False), (self.n,))
        for name in ("scan", "group", "theta", "age"):
            if self.has(name):
                trailing, text = PER_MAP[name]
                self._check_shape(name, self._dataset(name, text), (self.n, *trailing))
        self.halves()

    def has(self, name: str) -> bool:
        """Whether the file has an entry ``name`` (a dangling link counts: reading it fails)."""
        return self._file.get(name, getlink=True) is not None

    def _dataset(self, name: str, text: bool) -> h5py.Dataset:
        """The dataset ``name``, checked to resolve and to hold numbers (or text)."""
        import h5py

        link = self._file.get(name, getlink=True)
        if link is None:
            raise GbsbiError(f"{self.path}: dataset '{name}' is missing")
        try:
            node = self._file[name]
        except (KeyError, OSError, RuntimeError, ValueError):
            if isinstance(link, h5py.ExternalLink):
                target = f"an external link to {link.filename}:{link.path}"
            elif isinstance(link, h5py.SoftLink):
                target = f"a link to {link.path}"
            else:
                target = "an entry"
            raise GbsbiError(f"{self.path}: dataset '{name}' is {target} that does not "
                             "resolve") from None
        if not isinstance(node, h5py.Dataset):
            raise GbsbiError(f"{self.path}: '{name}' is a group, expected a dataset")
        is_text = h5py.check_string_dtype(node.dtype) is not None or node.dtype.kind in "SU"
        if text and not is_text:
            raise GbsbiError(f"{self.path}: dataset '{name}' holds {node.dtype}, expected text")
        if not text and node.dtype.kind not in "iuf":
            what = "text" if is_text else str(node.dtype)
            raise GbsbiError(f"{self.path}: dataset '{name}' holds {what}, expected numbers")
        return node

    def _check_shape(self, name: str, node: h5py.Dataset, shape: tuple[int, ...]) -> None:
        if tuple(node.shape) != shape:
            raise GbsbiError(f"{self.path}: dataset '{name}' has shape {tuple(node.shape)}, "
                             f"expected {shape} for {self.n} map(s) of {self.T} frames")

    def _read(self, node: h5py.Dataset, index: int | slice | tuple = ()) -> np.ndarray:
        try:
            return node[index]
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            raise GbsbiError(f"{self.path}: cannot read dataset '{node.name.lstrip('/')}' "
                             f"({one_line(err)})") from None

    def values(self, name: str, trailing: tuple[int, ...] = (), *,
               finite: bool = False, positive: bool = False) -> np.ndarray:
        """A numeric dataset of one row per map (or ``t``), checked and read, float64.

        Args:
            name: the dataset.
            trailing: its shape after the leading n (``t``: the leading axis is T).
            finite: refuse NaN and infinite values.
            positive: refuse values <= 0.
        """
        node = self._dataset(name, text=False)
        self._check_shape(name, node, ((self.T,) if name == "t" else (self.n,)) + trailing)
        value = np.asarray(self._read(node), dtype=np.float64)
        bad = ~np.isfinite(value) if finite else np.zeros(value.shape, dtype=bool)
        if positive:
            bad |= ~(value > 0)
        if bad.any():
            need = "finite and > 0" if positive else "finite"
            raise GbsbiError(f"{self.path}: dataset '{name}' must be {need}, found "
                             f"{value[bad].ravel()[0]:g}")
        return value

    def text(self, name: str) -> np.ndarray:
        """A text dataset of one entry per map, shape (n,), str."""
        node = self._dataset(name, text=True)
        self._check_shape(name, node, (self.n,))
        raw = self._read(node)
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                         for v in np.ravel(raw)], dtype=str)

    def maps(self, index: int | slice = slice(None), name: str = "C") -> np.ndarray:
        """Maps ``index`` of ``C`` (or of a half-map dataset of the same shape), float32."""
        node = self._dataset(name, text=False)
        self._check_shape(name, node, (self.n, self.T, self.T))
        return np.asarray(self._read(node, index), dtype=np.float32)

    def halves(self) -> tuple[str, str] | None:
        """The names of the split-half maps when the file has both, checked against ``C``."""
        names = ("C_half_a", "C_half_b")
        present = [name for name in names if self.has(name)]
        if not present:
            return None
        if len(present) == 1:
            raise GbsbiError(f"{self.path}: has '{present[0]}' but not the other half-map")
        for name in names:
            self._check_shape(name, self._dataset(name, text=False), (self.n, self.T, self.T))
        return names


@contextlib.contextmanager
def open_maps_file(path: str | os.PathLike) -> Iterator[MapsReader]:
    """Open a maps file and check its layout (module docstring) before anything is read.

    Args:
        path: HDF5 file written by :func:`write_maps`, an importer or a bank.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise GbsbiError(f"{path}: no such file")
    if path.is_dir():
        raise GbsbiError(f"{path}: is a folder, expected a maps file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise GbsbiError(f"{path}: not a readable HDF5 file ({one_line(err)})") from None
    with f:
        yield MapsReader(path, f)


def read_maps(path: str | os.PathLike) -> Maps:
    """Read a maps file, checking its layout; errors name the file and the dataset.

    Args:
        path: HDF5 file written by :func:`write_maps` or an importer.
    """
    with open_maps_file(path) as reader:
        data = {
            "C": reader.maps(),
            "t": reader.values("t", finite=True),
            "temperature": reader.values("temperature", finite=True, positive=True),
            "q": reader.values("q", finite=True, positive=True),
        }
        for name in ("scan", "group"):
            if reader.has(name):
                data[name] = reader.text(name)
        if reader.has("theta"):
            data["theta"] = reader.values("theta", (3,))
        if reader.has("age"):
            data["age"] = reader.values("age", finite=True)
    try:
        return Maps(**data)
    except GbsbiError as err:
        raise GbsbiError(f"{path}: {err}") from None
