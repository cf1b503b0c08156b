"""The maps interchange file (SPEC section 5).

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
==================  =======================  ==============================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import atomic_path

FORMAT = "gbsbi-maps"
VERSION = 1


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
    """

    C: np.ndarray
    t: np.ndarray
    temperature: np.ndarray
    q: np.ndarray
    scan: np.ndarray | None = None
    group: np.ndarray | None = None
    theta: np.ndarray | None = None

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

    def __len__(self) -> int:
        return self.C.shape[0]


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
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        T = maps.C.shape[1]
        f.create_dataset("C", data=maps.C, chunks=(1, T, T), compression="gzip", shuffle=True)
        f["t"] = maps.t
        f["temperature"] = maps.temperature
        f["q"] = maps.q
        for name in ("scan", "group"):
            value = getattr(maps, name)
            if value is not None:
                f.create_dataset(name, data=value.astype(object), dtype=h5py.string_dtype())
        if maps.theta is not None:
            f["theta"] = maps.theta
        for name, value in (extra or {}).items():
            value = np.asarray(value)
            chunks = (1, T, T) if value.shape[1:] == (T, T) else None
            f.create_dataset(name, data=value, chunks=chunks)


def read_maps(path: str | os.PathLike) -> Maps:
    """Read a maps file, checking its layout; errors name the file and the dataset.

    Args:
        path: HDF5 file written by :func:`write_maps` or an importer.
    """
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise GbsbiError(f"{path}: no such file") from None
    except OSError as err:
        raise GbsbiError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise GbsbiError(
                f"{path}: not a gbsbi maps file (root attribute 'format' is "
                f"{f.attrs.get('format')!r}, expected {FORMAT!r}); convert it with `gbsbi import`"
            )
        version = int(f.attrs.get("version", -1))
        if version != VERSION:
            raise GbsbiError(f"{path}: maps file version {version}, this gbsbi reads {VERSION}")
        data = {}
        for name in ("C", "t", "temperature", "q"):
            if name not in f:
                raise GbsbiError(f"{path}: dataset '{name}' is missing")
            data[name] = f[name][()]
        for name in ("scan", "group"):
            if name in f:
                data[name] = f[name].asstr()[()]
        if "theta" in f:
            data["theta"] = f["theta"][()]
    try:
        return Maps(**data)
    except GbsbiError as err:
        raise GbsbiError(f"{path}: {err}") from None
