"""Import two-time maps from beamline files into one maps file (docs/maps-file.md).

For every file: read its layout (:mod:`gbsbi.io.beamline`); check every map (square, real
numbers, finite, not all NaN, non-negative); complete one-triangle storage to the full map;
symmetrise; resample onto one frame grid (:mod:`gbsbi.io.resample`); attach q (nm^-1),
temperature (K), frame times (s) and scan names, from the file where it records them and from the
flags otherwise (a flag, when given, wins). Several files are concatenated; they must cover the
same time window, since a maps file has one time axis t.

Long measurements (``window``, ``stride``): each map is cut into windows of ``window`` s along
its diagonal, one every ``stride`` s, each resampled to the target grid as a map of its own. A
window's **age** is the time of its first frame since the start of the measurement; its scan
is named after the file's and its age (``NAME@600s``), and its group is the file's stem unless
``group`` says otherwise.

The module returns its messages instead of printing them; ``gbsbi import`` prints them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.io.beamline import RawMaps, one_line, open_maps
from gbsbi.io.mapsfile import Maps
from gbsbi.io.resample import SYMMETRY_TOL, complete_triangle, resample, symmetrise
from simulators.config import ExperimentConfig

#: Frames T of the model's grid, the default target of resampling.
DEFAULT_FRAMES = ExperimentConfig().n_frames
#: Largest relative difference between the time windows of files imported together.
WINDOW_RTOL = 1e-2


@dataclass(frozen=True)
class ImportOptions:
    """What ``gbsbi import`` was asked to do; each tuple holds a flag's values.

    Attributes:
        fmt: layout, "auto" or one of :data:`gbsbi.io.beamline.FORMATS`.
        key: dataset of pyCHX ``g12b`` maps in an HDF5 file.
        temperature: temperatures in K: one, one per map or one per file; None = from the files.
        q: q in nm^-1: one, one per map or one per file; None = from the files.
        frame_time: time between frames in s: one or one per file; None = from the files.
        scan: scan identifiers, one per map or one per file; None = from the file names.
        group: groups: one, one per map or one per file; None = no groups.
        n_frames: target number of frames T'; None keeps the native grid (all inputs must agree).
        window: cut each map into windows of this many s along its diagonal, or None.
        stride: s between the starts of consecutive windows (with ``window``).
    """

    fmt: str = "auto"
    key: str | None = None
    temperature: tuple[float, ...] | None = None
    q: tuple[float, ...] | None = None
    frame_time: tuple[float, ...] | None = None
    scan: tuple[str, ...] | None = None
    group: tuple[str, ...] | None = None
    n_frames: int | None = DEFAULT_FRAMES
    window: float | None = None
    stride: float | None = None


@dataclass(frozen=True)
class ImportResult:
    """Imported maps and what was done to them.

    Attributes:
        maps: the maps, on one frame grid, with their conditions.
        notes: what was read, converted and resampled, one line each.
        warnings: what was repaired (asymmetric maps), one line each, naming the file.
    """

    maps: Maps
    notes: tuple[str, ...]
    warnings: tuple[str, ...]


def check_map(C: np.ndarray, where: str) -> tuple[np.ndarray, str | None, float]:
    """Check one map's values and bring it to full symmetric form.

    Args:
        C: stored two-time map, shape (T, T), real numbers, NaN for missing entries.
        where: file and dataset, to start error messages.

    Returns:
        The full symmetric map, shape (T, T), float64; the triangle it was stored as ("upper",
        "lower") or None; its relative asymmetry before symmetrising.
    """
    C = np.asarray(C, dtype=np.float64)
    if np.isinf(C).any():
        raise GbsbiError(f"{where}: map has infinite entries")
    if np.isnan(C).all():
        raise GbsbiError(f"{where}: map is all NaN")
    low = float(np.nanmin(C))
    if low < 0:
        raise GbsbiError(
            f"{where}: map has negative entries (min {low:.3g}); a two-time map "
            "<I I>/(<I><I>) is non-negative (if the file holds C - 1, add 1 first)"
        )
    if not np.nanmax(C) > 0:
        raise GbsbiError(f"{where}: map holds no data (every entry is zero or NaN)")
    C, stored = complete_triangle(C)
    C, asymmetry = symmetrise(C)
    return C, stored, asymmetry


def _check_shape(where: str, shape: tuple[int, ...]) -> int:
    """Frames T of a map of this shape, or an error."""
    if len(shape) != 2:
        raise GbsbiError(f"{where}: expected a 2-D map (T, T), found shape {shape}")
    if shape[0] != shape[1]:
        raise GbsbiError(f"{where}: map is not square, shape {shape}")
    if shape[0] < 2:
        raise GbsbiError(f"{where}: map has {shape[0]} frame(s), at least 2 are needed")
    return shape[0]


def _spread(values: tuple | None, flag: str, counts: list[int]) -> np.ndarray | None:
    """A flag's values, one per map: from 1 value, one per map, or one per file."""
    if values is None:
        return None
    n_maps, n_files = sum(counts), len(counts)
    if len(values) == 1:
        return np.repeat(np.asarray(values), n_maps)
    if len(values) == n_maps:
        return np.asarray(values)
    if len(values) == n_files:
        return np.repeat(np.asarray(values), counts)
    raise GbsbiError(
        f"{flag} takes 1 value, one per map ({n_maps}) or one per file ({n_files}); "
        f"got {len(values)}"
    )


def _positive(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise GbsbiError(f"{what} must be positive, got {values[bad][0]:g}")
    return values


def _condition(
    raws: list[RawMaps], given: tuple[float, ...] | None, name: str, flag: str, unit: str,
    notes: list[str],
) -> np.ndarray:
    """Per-map values of q or temperature, from the flag if given, else from the files."""
    counts = [len(raw.maps) for raw in raws]
    values = _spread(given, flag, counts)
    if values is not None:
        values = _positive(values, flag)
    out, start = [], 0
    for raw, n in zip(raws, counts, strict=True):
        recorded = getattr(raw, name)
        if values is not None:
            mine = values[start:start + n]
            if recorded is not None and not np.allclose(mine, recorded, rtol=1e-6):
                notes.append(f"{raw.path.name}: {flag} overrides the {name} the file records")
        elif recorded is None:
            why = getattr(raw, f"why_no_{name}")
            raise GbsbiError(
                f"{raw.path}: the file gives no {name}{f' ({why})' if why else ''}; "
                f"pass {flag} ({unit})"
            )
        else:
            mine = np.broadcast_to(np.asarray(recorded, dtype=np.float64), (n,))
            if not np.all(np.isfinite(mine) & (mine > 0)):
                raise GbsbiError(
                    f"{raw.path}: the file gives {name} = {mine.min():g}; pass {flag} ({unit})"
                )
        out.append(mine)
        start += n
    return np.concatenate(out)


def _frame_times(raws: list[RawMaps], given: tuple[float, ...] | None,
                 strict: bool = False) -> np.ndarray:
    """Frame time of each file in s (``strict``: a file that records one must agree with
    ``--frame-time``, since windows are cut by it)."""
    if given is not None:
        if len(given) not in (1, len(raws)):
            raise GbsbiError(
                f"--frame-time takes 1 value or one per file ({len(raws)}); got {len(given)}"
            )
        dts = _positive(np.broadcast_to(given, (len(raws),)), "--frame-time")
        for raw, dt in zip(raws, dts, strict=True):
            if strict and raw.frame_time is not None and \
                    not np.isclose(raw.frame_time, dt, rtol=WINDOW_RTOL):
                raise GbsbiError(f"{raw.path}: its frames are {raw.frame_time:g} s apart, "
                                 f"--frame-time says {dt:g} s; the windows need the true frame "
                                 "time")
        return dts
    for raw in raws:
        if raw.frame_time is None:
            why = f" ({raw.why_no_frame_time})" if raw.why_no_frame_time else ""
            raise GbsbiError(
                f"{raw.path}: the file gives no frame time{why}; pass --frame-time (s)"
            )
    return np.array([raw.frame_time for raw in raws])


def _scans(raws: list[RawMaps], given: tuple[str, ...] | None) -> np.ndarray:
    """Scan identifier of each map: the given names, or file stem / map name."""
    names = [name for raw in raws for name in raw.names]
    if given is None:
        return np.asarray(names)
    counts = [len(raw.maps) for raw in raws]
    if len(given) == len(names):
        return np.asarray(given)
    if len(given) == len(raws):
        out = []
        for base, raw in zip(given, raws, strict=True):
            if len(raw.maps) == 1:
                out.append(base)
            else:
                out += [f"{base}/{name.split('/', 1)[-1]}" for name in raw.names]
        return np.asarray(out)
    raise GbsbiError(
        f"--scan takes one name per map ({sum(counts)}) or one per file ({len(raws)}); "
        f"got {len(given)}"
    )


def _grid(
    raws: list[RawMaps], frames: list[int], dts: np.ndarray, n_frames: int | None
) -> tuple[int, float]:
    """Target frames T' and frame time dt' in s over the common window."""
    desc = ", ".join(
        f"{raw.path.name} {T} x {dt:g} s" for raw, T, dt in zip(raws, frames, dts, strict=True)
    )
    if n_frames is None:
        if len(set(frames)) > 1 or not np.allclose(dts, dts[0], rtol=1e-6):
            raise GbsbiError(
                f"--no-resample needs every input on one frame grid; found {desc}; "
                "drop --no-resample to resample them"
            )
        return frames[0], float(dts[0])
    if int(n_frames) != n_frames or n_frames < 2:
        raise GbsbiError(f"--frames must be an integer >= 2, got {n_frames}")
    windows = np.asarray(frames) * dts
    if windows.max() > windows.min() * (1 + WINDOW_RTOL):
        raise GbsbiError(
            f"the files cover different time windows ({desc}); a maps file has one time axis, "
            "so import them into separate maps files"
        )
    return int(n_frames), float(windows[0] / n_frames)


def _windows(raw: RawMaps, T: int, dt: float, options: ImportOptions) -> np.ndarray:
    """The first frame of each window of one file's maps (``window`` s every ``stride`` s);
    a single window at frame 0 without ``window``."""
    if options.window is None:
        return np.zeros(1, dtype=np.int64)
    if options.stride is None or not options.stride > 0:
        raise GbsbiError(f"--stride must be > 0 s with --window, got {options.stride}")
    if not options.window > 0:
        raise GbsbiError(f"--window must be > 0 s, got {options.window}")
    width = int(round(options.window / dt))
    step = int(round(options.stride / dt))
    if width > T:
        raise GbsbiError(f"{raw.path}: --window {options.window:g} s is {width} frames of "
                         f"{dt:g} s, longer than its maps ({T} frames, {T * dt:g} s)")
    if width < 2 or step < 1:
        raise GbsbiError(f"{raw.path}: --window {options.window:g} s and --stride "
                         f"{options.stride:g} s are shorter than its frames ({dt:g} s)")
    return np.arange(0, T - width + 1, step, dtype=np.int64)


def _load(raw: RawMaps, i: int) -> np.ndarray:
    try:
        return np.asarray(raw.maps[i][()], dtype=np.float64)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise GbsbiError(f"{raw.path}: {raw.labels[i]}: cannot read ({one_line(err)})") from None


def _survey(
    path: str | os.PathLike, options: ImportOptions, notes: list[str]
) -> tuple[RawMaps, int]:
    """Open a file for its layout, conditions and frames T, without reading the maps.

    The returned :class:`RawMaps` is closed: use its conditions, names and ``len(maps)`` only.
    """
    with open_maps(path, options.fmt, options.key) as raw:
        frames = {
            _check_shape(f"{raw.path}: {label}", tuple(m.shape))
            for m, label in zip(raw.maps, raw.labels, strict=True)
        }
        if len(frames) > 1:
            raise GbsbiError(f"{raw.path}: maps have different frame counts {sorted(frames)}")
        notes += raw.notes
        return raw, frames.pop()


def _convert(
    raw: RawMaps, options: ImportOptions, n_frames: int, out: np.ndarray,
    starts: np.ndarray, width: int,
) -> tuple[list[str], list[str]]:
    """Read, check and resample the maps of one file into out, shape (m w, T', T'): map i's
    windows (first frames ``starts``, ``width`` frames each) at rows i w ... (i + 1) w - 1.

    Returns:
        Notes and warnings.
    """
    asym, stored, how = [], [], "kept"
    with open_maps(raw.path, options.fmt, options.key) as live:
        T = width
        for i, label in enumerate(live.labels):
            C, triangle, asymmetry = check_map(_load(live, i), f"{live.path}: {label}")
            stored += [triangle] if triangle else []
            if asymmetry > SYMMETRY_TOL:
                asym.append((asymmetry, label))
            for k, s in enumerate(starts):
                resampled, how = resample(C[None, s:s + width, s:s + width], n_frames)
                out[i * len(starts) + k] = resampled[0]
    notes, warnings = [], []
    m = len(raw.maps)
    lead = f"{raw.path.name}: " + (f"{m} maps, " if m > 1 else "")
    if stored and not raw.half_storage:
        notes.append(f"{lead}{stored[0]}-triangle storage completed to the full symmetric map")
    if how == "binned":
        notes.append(f"{lead}binned {T} -> {n_frames} frames (block average of {T // n_frames})")
    elif how == "interpolated":
        notes.append(f"{lead}resampled {T} -> {n_frames} frames by linear interpolation")
    if len(starts) > 1 or options.window is not None:
        notes.append(f"{lead}cut into {len(starts)} window(s) of {T} frames per map")
    if asym:
        worst, label = max(asym)
        warnings.append(
            f"{raw.path}: {len(asym)} of {m} map(s) not symmetric (max |C - C^T| up to "
            f"{100 * worst:.2g}% of the map's range, in {label}); symmetrised as (C + C^T)/2"
        )
    return notes, warnings


def import_maps(paths: list[str | os.PathLike], options: ImportOptions) -> ImportResult:
    """Import two-time maps from files in beamline layouts.

    Args:
        paths: input files; their maps are concatenated in this order.
        options: layout, conditions and target grid.

    Returns:
        The maps C, shape (n, T', T'), float32, with t (T',) in s, temperature (n,) in K, q (n,)
        in nm^-1, scan (n,) and group (n,) or None; and the messages.
    """
    if not paths:
        raise GbsbiError("no input files")
    notes: list[str] = []
    surveyed = [_survey(path, options, notes) for path in paths]
    raws = [raw for raw, _ in surveyed]
    frames = [T for _, T in surveyed]
    counts = [len(raw.maps) for raw in raws]
    temperature = _condition(raws, options.temperature, "temperature", "--temperature", "K", notes)
    q = _condition(raws, options.q, "q", "--q", "nm^-1", notes)
    dts = _frame_times(raws, options.frame_time, strict=options.window is not None)
    scan = _scans(raws, options.scan)
    group = _spread(options.group, "--group", counts)
    starts = [_windows(raw, T, dt, options) for raw, T, dt in zip(raws, frames, dts, strict=True)]
    widths = [T if options.window is None else int(round(options.window / dt))
              for T, dt in zip(frames, dts, strict=True)]
    n_frames, dt = _grid(raws, widths, dts, options.n_frames)
    per_map = [len(s) for s in starts]
    C = np.empty((sum(m * w for m, w in zip(counts, per_map, strict=True)), n_frames, n_frames),
                 dtype=np.float32)
    warnings: list[str] = []
    start = 0
    for raw, m, first, width in zip(raws, counts, starts, widths, strict=True):
        size = m * len(first)
        more_notes, more_warnings = _convert(raw, options, n_frames, C[start:start + size],
                                             first, width)
        notes += more_notes
        warnings += more_warnings
        start += size
    conditions = {"temperature": temperature, "q": q, "scan": scan, "group": group}
    if options.window is not None:
        conditions = _windowed(conditions, raws, counts, starts, dts, options)
    maps = Maps(C=C, t=dt * np.arange(n_frames), **conditions)
    return ImportResult(maps, tuple(notes), tuple(warnings))


def _windowed(conditions: dict, raws: list[RawMaps], counts: list[int],
              starts: list[np.ndarray], dts: np.ndarray, options: ImportOptions) -> dict:
    """The windows' conditions: each map's repeated per window, the age, the scan named after
    its map and age, the group the file's stem unless ``--group`` names one."""
    repeat = np.concatenate([np.full(m, len(s)) for m, s in zip(counts, starts, strict=True)])
    ages = np.concatenate([np.tile(s * dt, m) for m, s, dt in zip(counts, starts, dts,
                                                                   strict=True)])
    names = np.repeat(np.asarray(conditions["scan"], dtype=str), repeat)
    scan = np.array([f"{name}@{age:g}s" for name, age in zip(names, ages, strict=True)])
    if options.group is not None:
        group = np.repeat(np.asarray(conditions["group"], dtype=str), repeat)
    else:
        group = np.concatenate([np.full(m * len(s), raw.path.stem)
                                for raw, m, s in zip(raws, counts, starts, strict=True)])
    return {"temperature": np.repeat(conditions["temperature"], repeat),
            "q": np.repeat(conditions["q"], repeat), "scan": scan, "group": group, "age": ages}
