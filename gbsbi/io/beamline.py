"""Readers for the file layouts that hold two-time maps (docs/maps-file.md).

:func:`open_maps` opens one file and gives a :class:`RawMaps`: the stored maps, still unread, with
the conditions the file records converted to gbsbi units (q in nm^-1, temperature in K, frame time
in s). What a file does not record is None, with the reason, and the importer asks for the flag.

Layouts, with the dataset names used by the public readers pyXpcsViewer (APS), boost_corr (the
8-ID-I correlator that writes the results files), xpcs_webplot (legacy 8-ID-I files) and pyCHX:

``aps``, ``aps-legacy`` (APS 8-ID-I results files, NeXus era and before)
    read by :mod:`gbsbi.io.aps`, which lists the datasets used.
``pychx`` (NSLS-II CHX)
    ``g12b``, shape (T, T, n_q), full maps; a ``.npy`` file or a dataset of an ``.h5`` written by
    pyCHX ``export_xpcs_results_to_h5`` (frame time: attribute ``frame_time`` of ``/md``, s; q:
    first element of attributes ``"0"``, ``"1"``, ... of ``/qval_dict``, A^-1).
``npy`` / ``txt``
    one (T, T) matrix per file, or an (n, T, T) stack in ``.npy``; no conditions.

This module picks the layout (``--format auto``: by extension, by the file's first bytes and by
HDF5 content) and reads the generic ones (npy, txt, pyCHX); :class:`RawMaps` and
:func:`one_line` are defined in :mod:`gbsbi.io.rawmaps` and importable from here.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.aps import APS_C2, LEGACY_C2, multitau_only, read_aps, read_legacy
from gbsbi.io.rawmaps import FORMATS, RawMaps, check_dtype, one_line

__all__ = [
    "APS_C2",
    "FORMATS",
    "HDF5_SUFFIXES",
    "LEGACY_C2",
    "PYCHX_KEY",
    "TEXT_SUFFIXES",
    "RawMaps",
    "one_line",
    "open_maps",
]

PYCHX_KEY = "g12b"
TEXT_SUFFIXES = (".txt", ".dat", ".csv", ".tsv", ".asc")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")


@contextlib.contextmanager
def open_maps(
    path: str | os.PathLike, fmt: str = "auto", key: str | None = None
) -> Iterator[RawMaps]:
    """Open one file of two-time maps; the maps stay readable while the context is open.

    Args:
        path: the file.
        fmt: one of :data:`FORMATS`; "auto" picks by extension and by HDF5 content.
        key: dataset of pyCHX ``g12b`` maps in an HDF5 file (implies the pychx layout).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise GbsbiError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.exists():
        raise GbsbiError(f"{path}: no such file")
    if path.is_dir():
        raise GbsbiError(f"{path}: is a folder, expected a file")
    kind = _kind(path, fmt)
    if kind == "txt":
        yield _read_txt(path)
    elif kind == "npy":
        yield _read_npy(path, fmt)
    else:
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise GbsbiError(f"{path}: not a readable HDF5 file ({one_line(err)})") from None
        with f:
            try:
                raw = _read_hdf5(path, f, fmt, key)
            except (OSError, KeyError, ValueError, RuntimeError) as err:
                raise GbsbiError(f"{path}: unreadable HDF5 content ({one_line(err)})") from None
            yield raw


def _kind(path: Path, fmt: str) -> str:
    """'txt', 'npy' or 'hdf5' from the format, the extension and the file's first bytes."""
    suffix = path.suffix.lower()
    if fmt == "txt" or (fmt == "auto" and suffix in TEXT_SUFFIXES):
        return "txt"
    if fmt == "npy" or (fmt in ("auto", "pychx") and suffix == ".npy"):
        return "npy"
    if fmt in ("aps", "aps-legacy", "pychx") or suffix in HDF5_SUFFIXES:
        return "hdf5"
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
    except OSError as err:
        raise GbsbiError(f"{path}: cannot read ({one_line(err)})") from None
    if magic.startswith(b"\x93NUMPY"):
        return "npy"
    if magic == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    raise GbsbiError(f"{path}: cannot tell the file type from '{suffix}'; pass --format")


def _file_line(path: Path, message: str) -> str:
    """NumPy's "at row R, column C" (R counts data rows from 0, skipping comments and blank
    lines) as the file's own line number: "on line L, column C"."""
    found = re.search(r"at row (\d+), column (\d+)", message)
    if found is None:
        return message
    row, column = int(found.group(1)), found.group(2)
    data_rows = -1
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if text.split("#", 1)[0].strip():
                data_rows += 1
                if data_rows == row:
                    return message.replace(found.group(0), f"on line {number}, column {column}")
    return message


def _read_txt(path: Path) -> RawMaps:
    errors = []
    for delimiter in (None, ","):
        try:
            with warnings.catch_warnings():  # an empty file is reported below, in one line
                warnings.simplefilter("ignore", UserWarning)
                C = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, ndmin=2)
            break
        except (ValueError, UnicodeDecodeError) as err:
            errors.append(err)
    else:
        raise GbsbiError(f"{path}: not a numeric text matrix "
                         f"({_file_line(path, one_line(errors[0]))})")
    if C.size == 0:
        raise GbsbiError(f"{path}: empty text file")
    return RawMaps(path, "txt", (C,), ("matrix",), (path.stem,))


def _read_npy(path: Path, fmt: str) -> RawMaps:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if "Object arrays" in str(err) or "Python objects" in str(err):
            raise GbsbiError(f"{path}: wrong dtype object; a two-time map holds numbers") from None
        raise GbsbiError(f"{path}: not a readable .npy file ({one_line(err)})") from None
    except (OSError, EOFError) as err:
        raise GbsbiError(f"{path}: not a readable .npy file ({one_line(err)})") from None
    if not isinstance(array, np.ndarray):
        raise GbsbiError(f"{path}: an .npz archive; save one array per .npy file")
    check_dtype(path, "array", array.dtype)
    layout = "pychx" if fmt == "pychx" else _npy_layout(path, array.shape)
    if layout == "pychx":
        return _pychx(path, array, "array", None, None)
    if array.ndim == 3:
        labels = tuple(f"array[{j}]" for j in range(array.shape[0]))
        names = tuple(f"{path.stem}/{j}" for j in range(array.shape[0]))
        return RawMaps(path, "npy", tuple(array), labels, names)
    return RawMaps(path, "npy", (array,), ("array",), (path.stem,))


def _npy_layout(path: Path, shape: tuple[int, ...]) -> str:
    """'npy' for (T, T) or a stack (n, T, T), 'pychx' for (T, T, n_q)."""
    if len(shape) != 3:
        return "npy"
    stack, chx = shape[1] == shape[2], shape[0] == shape[1]
    if stack and chx:
        raise GbsbiError(
            f"{path}: array of shape {shape} reads either as n maps (n, T, T) or as pyCHX "
            "(T, T, n_q); pass --format npy or --format pychx"
        )
    return "pychx" if chx and not stack else "npy"


def _pychx(path: Path, array, where: str, q, frame_time: float | None) -> RawMaps:
    """pyCHX g12b (T, T, n_q) or one (T, T) map; q in A^-1 (n_q,) or None."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[0] != array.shape[1]:
        raise GbsbiError(
            f"{path}: {where}: pyCHX maps have shape (frames, frames, n_q), found {array.shape}"
        )
    n_q = array.shape[2]
    maps = tuple(array[:, :, j] for j in range(n_q))
    labels = tuple(f"{where}[:, :, {j}]" for j in range(n_q))
    names = tuple(f"{path.stem}/q{j}" for j in range(n_q)) if n_q > 1 else (path.stem,)
    why_q = ""
    if q is not None and len(q) != n_q:
        why_q, q = f"/qval_dict has {len(q)} entries for {n_q} maps", None
    notes = ()
    if q is not None:
        q = 10.0 * np.asarray(q, dtype=np.float64)
        notes = (f"{path.name}: q from /qval_dict, A^-1 -> nm^-1",)
    return RawMaps(
        path, "pychx", maps, labels, names, q=q, frame_time=frame_time, why_no_q=why_q,
        notes=notes,
    )


def _read_hdf5(path: Path, f: h5py.File, fmt: str, key: str | None) -> RawMaps:
    if fmt == "auto":
        fmt = _sniff(path, f, key)
    if fmt == "aps":
        return read_aps(path, f)
    if fmt == "aps-legacy":
        return read_legacy(path, f)
    if fmt == "pychx":
        return _read_pychx_h5(path, f, key or PYCHX_KEY)
    raise GbsbiError(f"{path}: an HDF5 file; use --format aps, aps-legacy or pychx, not {fmt}")


def _sniff(path: Path, f: h5py.File, key: str | None) -> str:
    if key is not None:
        return "pychx"
    if APS_C2 in f:
        return "aps"
    if LEGACY_C2 in f:
        return "aps-legacy"
    if PYCHX_KEY in f:
        return "pychx"
    if f.attrs.get("format") == "gbsbi-maps":
        raise GbsbiError(f"{path}: already a gbsbi maps file; nothing to import")
    if "/entry/data/data_000001" in f:
        raise GbsbiError(
            f"{path}: holds detector frames (Eiger master file), not two-time maps; "
            "compute the maps with `gbsbi correlate`"
        )
    multitau_only(path, f)
    raise GbsbiError(
        f"{path}: no known two-time layout (looked for {APS_C2}, {LEGACY_C2} and a "
        f"'{PYCHX_KEY}' dataset); pass --format pychx --key NAME for another dataset"
    )


def _read_pychx_h5(path: Path, f: h5py.File, key: str) -> RawMaps:
    node = f.get(key)
    if not isinstance(node, h5py.Dataset):
        raise GbsbiError(f"{path}: no dataset '{key}'" + ("" if key in f else "; pass --key NAME"))
    check_dtype(path, key, node.dtype)
    if node.ndim not in (2, 3):
        raise GbsbiError(
            f"{path}: {key}: pyCHX maps have shape (frames, frames, n_q), found {node.shape}"
        )
    frame_time = None
    md = f.get("md")
    if md is not None and "frame_time" in md.attrs:
        value = np.ravel(md.attrs["frame_time"])
        if value.size == 1 and value.dtype.kind in "iuf" and value[0] > 0:
            frame_time = float(value[0])
    q = None
    qval = f.get("qval_dict")
    if qval is not None:
        keys = sorted((k for k in qval.attrs if k.isdigit()), key=int)
        q = [float(np.ravel(qval.attrs[k])[0]) for k in keys] or None
    raw = _pychx(path, node[()], key, q, frame_time)
    note = (f"{path.name}: frame time {frame_time:g} s from /md attribute frame_time",)
    return RawMaps(
        raw.path, raw.layout, raw.maps, raw.labels, raw.names, q=raw.q,
        frame_time=frame_time, why_no_q=raw.why_no_q or ("" if q else "no /qval_dict"),
        why_no_frame_time="" if frame_time else "no frame_time attribute on /md",
        notes=raw.notes + (note if frame_time else ()),
    )
