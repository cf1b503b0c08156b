"""Readers for the two APS 8-ID-I results-file layouts (docs/maps-file.md).

Dataset names as used by the public readers pyXpcsViewer, boost_corr (the 8-ID-I correlator that
writes the results files) and xpcs_webplot (legacy 8-ID-I files):

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

Temperatures without a ``units`` attribute are read as deg C, the unit the 8-ID-I schema gives
for its sample stages and gbsbi's one rule for every layout (:mod:`gbsbi.io.units`); the
importer prints the conversion, and says when the unit was assumed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.rawmaps import RawMaps, check_dtype
from gbsbi.io.units import kelvin, unit_text

APS_C2 = "/xpcs/twotime/correlation_map"
LEGACY_C2 = "/exchange/C2T_all"
_SENSORS = tuple(f"/entry/sample/qnw{k}_temperature" for k in (1, 2, 3)) + (
    "/entry/sample/rheometer_temperature",
)


#: Where APS results files keep the multitau (one-time) g2, new and legacy layout.
MULTITAU = ("/xpcs/multitau", "/exchange/norm-0-g2")


def multitau_only(path: Path, f: h5py.File) -> None:
    """Refuse, in the user's words, an APS results file of multitau g2 without two-time maps."""
    if any(name in f for name in MULTITAU) and APS_C2 not in f and LEGACY_C2 not in f:
        raise GbsbiError(f"{path}: an APS results file with multitau g2 only (one-time "
                         "correlation functions), no two-time maps; rerun the beamline's "
                         "analysis with two-time (twotime) output")


def _numbered(path: Path, f: h5py.File, group: str, prefix: str) -> list[tuple[int, str]]:
    """(number, name) of the datasets PREFIX_NNNNN of a group, by number."""
    node = f.get(group)
    if not isinstance(node, h5py.Group):
        multitau_only(path, f)
        aps = "/xpcs" in f or "/exchange" in f  # the layout is APS's; the maps are missing
        raise GbsbiError(f"{path}: no group {group}" + ("" if aps else " (not this layout?)"))
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
        check_dtype(path, f"{group}/{name}", node[name].dtype)
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
    """A temperature dataset in K, by the rule of :mod:`gbsbi.io.units` (no units: degC).

    Returns:
        The temperature in K (the mean of a series of readings) and a note saying how it was
        read; or None and the reason.
    """
    values = _values(f, name)
    if values is None or values.size == 0 or not np.isfinite(values).all():
        return None, f"{name} is not a finite number"
    value, note = kelvin(float(values.mean()), unit_text(f[name].attrs.get("units")), name)
    mean = f" (mean of {values.size} readings)" if values.size > 1 else ""
    return value, note + mean if value is not None else note


@dataclass(frozen=True)
class _Layout:
    """Where one APS layout keeps its maps and conditions.

    Attributes:
        name: the layout's name in --format.
        group: the group of the numbered maps PREFIX_NNNNN.
        prefix: their name before the number.
        frame_time: the frame time dataset; factors: datasets it is multiplied by.
        temperatures: the sample temperature, then the sensors used when it is absent (one of
            them, when exactly one is present).
        q: (file, map numbers) -> (q in nm^-1 or None, a note or the reason).
    """

    name: str
    group: str
    prefix: str
    frame_time: str
    factors: tuple[str, ...]
    temperatures: tuple[str, ...]
    q: Callable[[h5py.File, list[int]], tuple[np.ndarray | None, str]]


def _read(path: Path, f: h5py.File, layout: _Layout) -> RawMaps:
    """The maps and conditions of one APS layout in an open file."""
    found = _numbered(path, f, layout.group, layout.prefix)
    maps = tuple(f[f"{layout.group}/{name}"] for _, name in found)
    labels = tuple(f"{layout.group}/{name}" for _, name in found)
    names = tuple(f"{path.stem}/{name}" for _, name in found)
    notes = []
    q, why_q = layout.q(f, [k for k, _ in found])
    if q is not None:
        notes.append(f"{path.name}: {why_q}")
        why_q = ""
    dt, why_dt, note = _frame_time(f, layout.frame_time, layout.factors)
    notes += [f"{path.name}: {note}"] if note else []
    primary = layout.temperatures[0]
    temperature, why_t = None, f"no {primary}"
    present = [name for name in layout.temperatures if name in f]
    if primary in f or len(present) == 1:
        temperature, why_t = _kelvin(f, present[0])
    elif present:
        why_t = f"several sensors: {', '.join(p.rsplit('/', 1)[-1] for p in present)}"
    if temperature is not None:
        notes.append(f"{path.name}: {why_t}")
        why_t = ""
    return RawMaps(
        path, layout.name, maps, labels, names, q=q, temperature=temperature, frame_time=dt,
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
    assumed = "" if units else ", assumed"
    return np.asarray(q), f"q from /xpcs/qmap/dynamic_v_list_dim0 (unit {unit}{assumed}) -> nm^-1"


def _legacy_q(f: h5py.File, numbers: list[int]) -> tuple[np.ndarray | None, str]:
    """q (nm^-1) of maps g2_<number> from /xpcs/dqlist (A^-1); or None and the reason."""
    qlist = _values(f, "/xpcs/dqlist")
    if qlist is None:
        return None, "no /xpcs/dqlist"
    if not all(1 <= k <= qlist.size for k in numbers):
        return None, f"/xpcs/dqlist has {qlist.size} entries, fewer than the map numbers"
    return 10.0 * np.array([qlist[k - 1] for k in numbers]), "q from /xpcs/dqlist, A^-1 -> nm^-1"


APS = _Layout(
    "aps", APS_C2, "c2_", "/entry/instrument/detector_1/frame_time",
    ("/xpcs/twotime/config/stride_frame", "/xpcs/twotime/config/avg_frame"),
    ("/entry/sample/temperature", *_SENSORS), _aps_q,
)
LEGACY = _Layout(
    "aps-legacy", LEGACY_C2, "g2_", "/measurement/instrument/detector/exposure_period",
    ("/xpcs/avg_frames", "/xpcs/stride_frames"), ("/measurement/sample/temperature_A",),
    _legacy_q,
)


def read_aps(path: Path, f: h5py.File) -> RawMaps:
    """The ``aps`` layout (APS 8-ID-I results file, NeXus era) of an open file."""
    return _read(path, f, APS)


def read_legacy(path: Path, f: h5py.File) -> RawMaps:
    """The ``aps-legacy`` layout (APS 8-ID-I, before NeXus) of an open file."""
    return _read(path, f, LEGACY)
