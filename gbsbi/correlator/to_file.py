"""``gbsbi correlate`` as a function: photon-count frames to a maps file of two-time maps, one
per ROI, with the geometry and conditions from the request, else from the frames file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gbsbi.correlator.correlate import (
    MAP_NAMES,
    auto_chunk_pixels,
    correlate_rois,
    dropped_frames,
    mean_counts,
)
from gbsbi.correlator.frames import DetectorInfo, EigerFrames, FrameSource, open_frames
from gbsbi.correlator.roi import Geometry, Roi, label_rois, q_ring
from gbsbi.errors import GbsbiError


@dataclass(frozen=True)
class CorrelateRequest:
    """What ``gbsbi correlate`` is asked for (None: from the frames file, where it says).

    Attributes:
        frames: a ``.npy`` stack (T, rows, cols) or an Eiger master file.
        out: the maps file to write.
        q_ring: q-ring ROIs, (QMIN, QMAX) in nm^-1 each; or
        labels: an integer label mask ``.npy``, each label one ROI.
        center: beam centre (row, col) in pixels.
        pixel_size: um.
        distance: sample-detector distance in m.
        wavelength: Angstrom.
        mask: a valid-pixel mask ``.npy`` (nonzero = use).
        temperature: K.
        frame_time: s.
        drop_frames: frames to drop, e.g. ``3,17,40-45``.
        chunk_pixels: ROI pixels correlated per band (None: a band of BAND_BYTES).
        split_block: checkerboard block edge of the split halves, pixels.
        scratch: folder for the scratch file of the ROI pixels' counts.
        overwrite: replace an existing ``out``.
    """

    frames: str
    out: str
    q_ring: tuple[tuple[float, float], ...] | None = None
    labels: str | None = None
    center: tuple[float, float] | None = None
    pixel_size: float | None = None
    distance: float | None = None
    wavelength: float | None = None
    mask: str | None = None
    temperature: float | None = None
    frame_time: float | None = None
    drop_frames: str | None = None
    chunk_pixels: int | None = None
    split_block: int = 1
    scratch: str | None = None
    overwrite: bool = False


def parse_frame_list(text: str, n_frames: int) -> np.ndarray:
    """Parse ``3,17,40-45`` into a boolean flag per frame.

    Args:
        text: comma-separated zero-based frame indices and inclusive ranges.
        n_frames: number of frames T.

    Returns:
        Flags, shape (T,), bool.
    """
    flags = np.zeros(n_frames, dtype=bool)
    for item in text.split(","):
        first, sep, last = item.strip().partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise GbsbiError(f"--drop-frames: {item!r} is not a frame index or range") from None
        if not 0 <= lo <= hi < n_frames:
            raise GbsbiError(f"--drop-frames: {item!r} is outside frames 0-{n_frames - 1}")
        flags[lo:hi + 1] = True
    return flags


def _load_image(path: str, what: str, shape: tuple[int, int]) -> np.ndarray:
    """A 2-d ``.npy`` image (mask or labels) checked against the frames' (rows, cols)."""
    try:
        image = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise GbsbiError(f"{path}: no such file ({what})") from None
    except (ValueError, OSError, EOFError) as err:
        raise GbsbiError(f"{path}: not a readable .npy array ({what}: {err})") from None
    if not isinstance(image, np.ndarray) or image.shape != shape:
        found = getattr(image, "shape", "an archive")
        raise GbsbiError(f"{path}: {what} has shape {found}, the frames are {shape}")
    return image


def _geometry(args: CorrelateRequest, info: DetectorInfo) -> Geometry:
    """Geometry from the flags, falling back on the frames file's metadata."""
    values = {
        "center": tuple(args.center) if args.center else info.center,
        "pixel_size": args.pixel_size if args.pixel_size is not None else info.pixel_size,
        "distance": args.distance if args.distance is not None else info.distance,
        "wavelength": args.wavelength if args.wavelength is not None else info.wavelength,
    }
    missing = [f"--{k.replace('_', '-')}" for k, v in values.items() if v is None]
    if missing:
        raise GbsbiError(f"the q of each ROI needs the geometry: give {', '.join(missing)} "
                         f"(not found in {args.frames})")
    return Geometry(**values)


def _rois(args: CorrelateRequest, info: DetectorInfo, shape: tuple[int, int]) -> list[Roi]:
    """The ROIs from --q-ring or --labels, with the file's pixel mask and --mask applied."""
    valid = np.ones(shape, dtype=bool) if info.valid is None else info.valid
    if args.mask:
        valid = valid & (_load_image(args.mask, "mask", shape) != 0)
    geometry = _geometry(args, info)
    if args.labels:
        labels = _load_image(args.labels, "label mask", shape)
        return label_rois(labels, valid, geometry, args.split_block)
    return [q_ring(geometry, shape, lo, hi, valid, args.split_block) for lo, hi in args.q_ring]


def _condition(flag_value: float | None, file_value: float | None, flag: str, frames: str,
               where: str, unit: str) -> float:
    """A positive scalar from its flag, else from the frames file, else an error naming both."""
    value = flag_value if flag_value is not None else file_value
    if value is None:
        raise GbsbiError(f"{flag} ({unit}) is required: {frames} has no {where}")
    if not (np.isfinite(value) and value > 0):
        raise GbsbiError(f"{flag} must be > 0 {unit}, got {value}")
    return float(value)


def correlate_to_file(args: CorrelateRequest, log: Callable[[str], None] = print) -> Path:
    """Correlate the frames of ``args.frames`` into the maps file ``args.out`` (written
    atomically) and report each ROI's counts and Phi through ``log``; returns ``out``."""
    from gbsbi.io.atomic import check_new

    out = check_new(args.out, args.overwrite)
    with open_frames(args.frames) as source:
        T, rows, cols = source.shape
        info = source.info
        eiger = isinstance(source, EigerFrames)
        npy = " (a .npy stack carries no metadata)"
        temperature = _condition(
            args.temperature, info.temperature, "--temperature", args.frames,
            "entry/sample/temperature" if eiger else f"sample temperature{npy}", "K")
        frame_time = _condition(
            args.frame_time, info.frame_time, "--frame-time", args.frames,
            "entry/instrument/detector/frame_time" if eiger else f"frame time{npy}", "s")
        for note in info.notes:
            log(note)
        rois = _rois(args, info, (rows, cols))
        flagged = parse_frame_list(args.drop_frames, T) if args.drop_frames else np.zeros(T, bool)
        chunk = args.chunk_pixels or auto_chunk_pixels(T, np.dtype(source.dtype).itemsize)
        config = {
            "frames": str(Path(args.frames).resolve()),
            "rois": [{"name": r.name, "q": r.q, "n_pixels": int(r.pixels.size)} for r in rois],
            "chunk_pixels": chunk, "split_block": args.split_block,
            "frame_time": frame_time, "temperature": temperature,
            "dropped": np.flatnonzero(flagged).tolist(),
        }
        text = json.dumps(config, sort_keys=True, separators=(",", ":"))
        attrs = {"kind": "correlate", "config": text,
                 "config_hash": hashlib.sha256(text.encode()).hexdigest()}
        report = _write(out, source, rois, chunk, flagged, args.scratch, attrs,
                        np.arange(T) * frame_time, temperature, Path(args.frames).stem)
    _report(out, rois, report, T, log)
    return out


def _write(out: Path, source: FrameSource, rois: list[Roi], chunk: int, flagged: np.ndarray,
           scratch: str | None, attrs: dict, t: np.ndarray, temperature: float,
           stem: str) -> dict[str, np.ndarray]:
    """Correlate ROI by ROI into the maps file (written atomically), each map as soon as it is
    computed, then the bookkeeping and each ROI's Phi, read back one ROI at a time.

    Returns:
        The bookkeeping datasets and the Phi of each ROI, for the report.
    """
    import h5py

    from gbsbi.io.atomic import atomic_path
    from gbsbi.io.mapsfile import create_maps, map_chunks
    from gbsbi.summaries.phi import phi

    n, T = len(rois), len(t)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        create_maps(f, n, t, np.full(n, temperature), [r.q for r in rois], attrs)
        for name in MAP_NAMES[:2]:
            f.create_dataset(name, (n, T, T), dtype=np.float32, chunks=map_chunks(T),
                             compression="gzip", shuffle=True)
        f.create_dataset("scan", data=np.array([f"{stem}/{r.name}" for r in rois], dtype=object),
                         dtype=h5py.string_dtype())
        sums, n_pixels, excluded = [], [], []
        for k, result in enumerate(correlate_rois(source, rois, chunk, flagged, True, scratch)):
            for name in MAP_NAMES:
                f[name][k] = result.map(name)
            sums.append(result.sums)
            n_pixels.append(result.n_pixels)
            excluded.append(result.n_excluded)
            del result  # the accumulators go before the next ROI's are made
        dropped = dropped_frames(flagged, sums)
        report = {
            "n_pixels": np.stack(n_pixels),
            "n_excluded": np.array(excluded, dtype=np.int64),
            "mean_counts": np.stack([mean_counts(s, m, dropped)
                                     for s, m in zip(sums, n_pixels, strict=True)]),
            "dropped": dropped,
            "phi": np.array([phi(f["C"][k]) for k in range(n)]),
            "phi_split_half": np.array([phi(f["C_half_a"][k], f["C_half_b"][k])
                                        for k in range(n)]),
        }
        for name in ("n_pixels", "mean_counts", "dropped", "phi", "phi_split_half"):
            f[name] = report[name]
    return report


def _report(out: Path, rois: list[Roi], report: dict[str, np.ndarray], T: int,
            log: Callable[[str], None]) -> None:
    width = max(len("ROI"), *(len(roi.name) for roi in rois))
    log(f"{'ROI':<{width}}  q [nm^-1]  pixels  <n> [counts/px/frame]  Phi    Phi split-half")
    for k, roi in enumerate(rois):
        n_excluded = report["n_excluded"][k]
        excluded = f" ({n_excluded} excluded)" if n_excluded else ""
        mean = np.nanmean(report["mean_counts"][k])
        log(f"{roi.name:<{width}}  {roi.q:9.4g}  {report['n_pixels'][k].sum():6d}  "
              f"{mean:21.4g}  {report['phi'][k]:5.3f}  {report['phi_split_half'][k]:6.3f}"
              f"{excluded}")
    dropped = int(report["dropped"].sum())
    log(f"wrote {out}: {len(rois)} map(s) of {T} frames"
          f"{f', {dropped} dropped' if dropped else ''}")
