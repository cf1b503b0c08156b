"""Readers for the file layouts that hold two-time maps (SPEC section 5).

:func:`open_maps` opens one file and gives a :class:`RawMaps`: the stored maps, still unread, with
the conditions the file records converted to gbsbi units (q in nm^-1, temperature in K, frame time
in s). What a file does not record is None, with the reason, and the importer asks for the flag.

Layouts, with the dataset names used by the public readers pyXpcsViewer (APS), boost_corr (the
8-ID-I correlator that writes the results files), xpcs_webplot (legacy 8-ID-I files) and pyCHX:

``aps`` (APS 8-ID-I results file, NeXus era)
    maps ``/xpcs/twotime/correlation_map/c2_00001``, ... (upper triangle with the diagonal, one per
    processed dynamic q bin, in the order of ``/xpcs/twotime/processed_bins``, which lists the
    1-based dynamic-map labels); q from ``/xpcs/qmap/dynamic_v_list_dim0`` in the unit
    ``/xpcs/qmap/map_units[0]`` (A^-1), a label's (q, phi) cell given by
    ``/xpcs/qmap/dynamic_index_mapping`` over the ``dynamic_num_pts`` = (n_q, n_phi) grid; frame
    time ``/entry/instrument/detector_1/frame_time`` times ``/xpcs/twotime/config/stride_frame``
    and ``avg_frame``; temperature ``/entry/sample/temperature`` (NXsample) or the one present
    among ``/entry/sample/qnw{1,2,3}_temperature`` and ``rheometer_temperature`` (deg C).
``aps-legacy`` (APS 8-ID-I, before NeXus)
    maps ``/exchange/C2T_all/g2_00001``, ... (upper triangles; the number is the dynamic-map
    label); q from ``/xpcs/dqlist`` (A^-1, one per dynamic bin); frame time
    ``/measurement/instrument/detector/exposure_period`` times ``/xpcs/avg_frames`` and
    ``/xpcs/stride_frames``; temperature ``/measurement/sample/temperature_A`` (deg C).
``pychx`` (NSLS-II CHX)
    ``g12b``, shape (T, T, n_q), full maps; a ``.npy`` file or a dataset of an ``.h5`` written by
    pyCHX ``export_xpcs_results_to_h5`` (frame time: attribute ``frame_time`` of ``/md``, s; q:
    first element of attributes ``"0"``, ``"1"``, ... of ``/qval_dict``, A^-1).
``npy`` / ``txt``
    one (T, T) matrix per file, or an (n, T, T) stack in ``.npy``; no conditions.

Temperatures without a ``units`` attribute are read as deg C, the unit the 8-ID-I schema gives
for its sample stages; the importer prints the conversion so a wrong guess is visible.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from gbsbi.errors import GbsbiError

FORMATS = ("auto", "npy", "txt", "aps", "aps-legacy", "pychx")
APS_C2 = "/xpcs/twotime/correlation_map"
LEGACY_C2 = "/exchange/C2T_all"
PYCHX_KEY = "g12b"
TEXT_SUFFIXES = (".txt", ".dat", ".csv", ".tsv", ".asc")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")
_SENSORS = tuple(f"/entry/sample/qnw{k}_temperature" for k in (1, 2, 3)) + (
    "/entry/sample/rheometer_temperature",
)


@dataclass(frozen=True)
class RawMaps:
    """The maps of one file, as stored, with the conditions the file records.

    Attributes:
        path: the file.
        layout: one of :data:`FORMATS` other than "auto".
        maps: m stored maps, each an array or HDF5 dataset of shape (T, T) (read with ``[()]``).
        labels: where each map lives, for messages (a dataset path), shape (m,).
        names: short name of each map for scan identifiers, shape (m,).
        q: q of each map in nm^-1, shape (m,), or None.
        temperature: temperature in K, or None.
        frame_time: time between stored frames in s, or None.
        why_no_q, why_no_temperature, why_no_frame_time: why a condition is None ("" if unknown).
        notes: what was read and converted, one line each.
        half_storage: the layout stores one triangle of each map.
    """

    path: Path
    layout: str
    maps: tuple
    labels: tuple[str, ...]
    names: tuple[str, ...]
    q: np.ndarray | None = None
    temperature: float | None = None
    frame_time: float | None = None
    why_no_q: str = ""
    why_no_temperature: str = ""
    why_no_frame_time: str = ""
    notes: tuple[str, ...] = ()
    half_storage: bool = False


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split()) or type(err).__name__


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


def _check_dtype(path: Path, label: str, dtype: np.dtype) -> None:
    if dtype.kind not in "iuf":
        what = {"b": "boolean", "c": "complex", "O": "object", "U": "text", "S": "text"}
        raise GbsbiError(
            f"{path}: {label}: wrong dtype {what.get(dtype.kind, str(dtype))} ({dtype}); "
            "a two-time map holds real numbers"
        )


def _read_txt(path: Path) -> RawMaps:
    errors = []
    for delimiter in (None, ","):
        try:
            C = np.loadtxt(path, dtype=np.float64, delimiter=delimiter, ndmin=2)
            break
        except (ValueError, UnicodeDecodeError) as err:
            errors.append(err)
    else:
        raise GbsbiError(f"{path}: not a numeric text matrix ({one_line(errors[0])})")
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
    _check_dtype(path, "array", array.dtype)
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
        return _read_aps(path, f)
    if fmt == "aps-legacy":
        return _read_legacy(path, f)
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
    raise GbsbiError(
        f"{path}: no known two-time layout (looked for {APS_C2}, {LEGACY_C2} and a "
        f"'{PYCHX_KEY}' dataset); pass --format pychx --key NAME for another dataset"
    )


def _numbered(path: Path, f: h5py.File, group: str, prefix: str) -> list[tuple[int, str]]:
    """(number, name) of the datasets PREFIX_NNNNN of a group, by number."""
    node = f.get(group)
    if not isinstance(node, h5py.Group):
        raise GbsbiError(f"{path}: no group {group} (not this layout?)")
    found = sorted(
        (int(name[len(prefix):]), name)
        for name in node
        if re.fullmatch(rf"{prefix}\d+", name)
    )
    if not found:
        raise GbsbiError(f"{path}: group {group} holds no {prefix}NNNNN maps")
    for _, name in found:
        if not isinstance(node[name], h5py.Dataset):
            raise GbsbiError(f"{path}: {group}/{name} is not a dataset")
        _check_dtype(path, f"{group}/{name}", node[name].dtype)
    return found


def _values(f: h5py.File, name: str) -> np.ndarray | None:
    """A numeric dataset flattened to float64, or None if absent or not numeric."""
    node = f.get(name)
    if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "iuf":
        return None
    return np.asarray(node[()], dtype=np.float64).ravel()


def _scalar(f: h5py.File, name: str) -> float | None:
    values = _values(f, name)
    return float(values[0]) if values is not None and values.size == 1 else None


def _strings(f: h5py.File, name: str) -> list[str] | None:
    node = f.get(name)
    if not isinstance(node, h5py.Dataset):
        return None
    raw = np.ravel(node[()])
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw]


def _per_nm(unit: str) -> float | None:
    """Factor from a q unit (A^-1 or nm^-1 in any spelling) to nm^-1, or None if unknown."""
    bare = re.sub(r"[\s^/()\-⁻¹1]|inv", "", unit.lower())
    if bare == "nm":
        return 1.0
    if bare in ("a", "å", "angstrom", "angstroms", "ang"):
        return 10.0
    return None


def _frame_time(f: h5py.File, base: str, factors: tuple[str, ...]) -> tuple[float | None, str, str]:
    """Frame time base x factors from a file: (seconds or None, why not, note)."""
    dt = _scalar(f, base)
    if dt is None:
        return None, f"no {base}", ""
    used = []
    for name in factors:
        k = _scalar(f, name)
        if k is not None and k != 1:
            dt, used = dt * k, [*used, f"{name.rsplit('/', 1)[-1]} {k:g}"]
    if not (np.isfinite(dt) and dt > 0):
        return None, f"{base} gives {dt:g} s", ""
    extra = f" x {' x '.join(used)}" if used else ""
    return dt, "", f"frame time {dt:g} s from {base}{extra}"


def _kelvin(f: h5py.File, name: str) -> tuple[float | None, str]:
    """A temperature dataset in K, read as deg C unless its units attribute says K.

    Returns:
        The temperature in K (the mean of a series of readings) and a note saying how it was
        read; or None and the reason.
    """
    values = _values(f, name)
    if values is None or values.size == 0 or not np.isfinite(values).all():
        return None, f"{name} is not a finite number"
    value = float(values.mean())
    units = f[name].attrs.get("units", "")
    units = units.decode() if isinstance(units, bytes) else str(units)
    if units.strip().lower() in ("k", "kelvin"):
        kelvin, how = value, f"{value:g} K"
    elif units.strip().lower() in ("", "c", "degc", "deg c", "°c", "celsius", "degrees celsius"):
        kelvin = value + 273.15
        how = f"{value:g} degC" + ("" if units else " (no units attribute, read as Celsius)")
    else:
        return None, f"{name} has unknown units {units!r}"
    if not (np.isfinite(kelvin) and kelvin > 0):
        return None, f"{name} gives {how}, not a temperature"
    mean = f" (mean of {values.size} readings)" if values.size > 1 else ""
    return kelvin, f"temperature {how} from {name}{mean} -> {kelvin:.2f} K"


def _read_aps(path: Path, f: h5py.File) -> RawMaps:
    found = _numbered(path, f, APS_C2, "c2_")
    maps = tuple(f[f"{APS_C2}/{name}"] for _, name in found)
    labels = tuple(f"{APS_C2}/{name}" for _, name in found)
    names = tuple(f"{path.stem}/{name}" for _, name in found)
    notes = []
    q, why_q = _aps_q(f, [k for k, _ in found])
    if q is not None:
        notes.append(f"{path.name}: q from /xpcs/qmap/dynamic_v_list_dim0 ({why_q}) -> nm^-1")
        why_q = ""
    dt, why_dt, note = _frame_time(
        f, "/entry/instrument/detector_1/frame_time",
        ("/xpcs/twotime/config/stride_frame", "/xpcs/twotime/config/avg_frame"),
    )
    notes += [f"{path.name}: {note}"] if note else []
    temperature, why_t = None, "no /entry/sample/temperature"
    present = [name for name in ("/entry/sample/temperature", *_SENSORS) if name in f]
    if "/entry/sample/temperature" in f or len(present) == 1:
        temperature, why_t = _kelvin(f, present[0])
    elif present:
        why_t = f"several sensors: {', '.join(p.rsplit('/', 1)[-1] for p in present)}"
    if temperature is not None:
        notes.append(f"{path.name}: {why_t}")
        why_t = ""
    return RawMaps(
        path, "aps", maps, labels, names, q=q, temperature=temperature, frame_time=dt,
        why_no_q=why_q, why_no_temperature=why_t, why_no_frame_time=why_dt, notes=tuple(notes),
        half_storage=True,
    )


def _aps_q(f: h5py.File, numbers: list[int]) -> tuple[np.ndarray | None, str]:
    """q (nm^-1) of maps c2_<number>, and the unit read; or None and the reason."""
    qlist = _values(f, "/xpcs/qmap/dynamic_v_list_dim0")
    if qlist is None:
        return None, "no /xpcs/qmap/dynamic_v_list_dim0"
    axes = _strings(f, "/xpcs/qmap/map_names")
    if axes and axes[0].strip().lower() != "q":
        return None, f"the dynamic q map is binned in {axes[0]!r}, not q"
    units = _strings(f, "/xpcs/qmap/map_units")
    unit = units[0] if units else "A^-1"
    factor = _per_nm(unit)
    if factor is None:
        return None, f"unknown q unit {unit!r} in /xpcs/qmap/map_units"
    shape = _values(f, "/xpcs/qmap/dynamic_num_pts")
    phis = _values(f, "/xpcs/qmap/dynamic_v_list_dim1")
    n_phi = int(shape[1]) if shape is not None and shape.size > 1 else (
        phis.size if phis is not None else 1
    )
    processed = _values(f, "/xpcs/twotime/processed_bins")
    mapping = _values(f, "/xpcs/qmap/dynamic_index_mapping")
    q = []
    for k in numbers:
        label = k  # without processed_bins, map k is dynamic bin k
        if processed is not None and k <= processed.size:
            label = int(processed[k - 1])
        cell = label - 1  # without a mapping, bins are the (q, phi) cells in order
        if mapping is not None and 1 <= label <= mapping.size:
            cell = int(mapping[label - 1])
        if not 0 <= cell // max(n_phi, 1) < qlist.size:
            return None, f"the q map has no bin for map c2_{k:05d}"
        q.append(qlist[cell // max(n_phi, 1)] * factor)
    return np.asarray(q), f"unit {unit}" + ("" if units else ", assumed")


def _read_legacy(path: Path, f: h5py.File) -> RawMaps:
    found = _numbered(path, f, LEGACY_C2, "g2_")
    maps = tuple(f[f"{LEGACY_C2}/{name}"] for _, name in found)
    labels = tuple(f"{LEGACY_C2}/{name}" for _, name in found)
    names = tuple(f"{path.stem}/{name}" for _, name in found)
    notes = []
    qlist = _values(f, "/xpcs/dqlist")
    q, why_q = None, "no /xpcs/dqlist"
    if qlist is not None:
        if all(1 <= k <= qlist.size for k, _ in found):
            q = 10.0 * np.array([qlist[k - 1] for k, _ in found])
            notes.append(f"{path.name}: q from /xpcs/dqlist, A^-1 -> nm^-1")
        else:
            why_q = f"/xpcs/dqlist has {qlist.size} entries, fewer than the map numbers"
    dt, why_dt, note = _frame_time(
        f, "/measurement/instrument/detector/exposure_period",
        ("/xpcs/avg_frames", "/xpcs/stride_frames"),
    )
    notes += [f"{path.name}: {note}"] if note else []
    temperature, why_t = None, "no /measurement/sample/temperature_A"
    if "/measurement/sample/temperature_A" in f:
        temperature, why_t = _kelvin(f, "/measurement/sample/temperature_A")
        if temperature is not None:
            notes.append(f"{path.name}: {why_t}")
            why_t = ""
    return RawMaps(
        path, "aps-legacy", maps, labels, names, q=q, temperature=temperature, frame_time=dt,
        why_no_q=why_q, why_no_temperature=why_t, why_no_frame_time=why_dt, notes=tuple(notes),
        half_storage=True,
    )


def _read_pychx_h5(path: Path, f: h5py.File, key: str) -> RawMaps:
    node = f.get(key)
    if not isinstance(node, h5py.Dataset):
        raise GbsbiError(f"{path}: no dataset '{key}'" + ("" if key in f else "; pass --key NAME"))
    _check_dtype(path, key, node.dtype)
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
