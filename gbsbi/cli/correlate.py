"""``gbsbi correlate``: photon-count frames to a maps file of two-time maps, one per ROI."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from gbsbi.correlator import (
    BAND_BYTES,
    DetectorInfo,
    EigerFrames,
    Geometry,
    Roi,
    TwoTime,
    auto_chunk_pixels,
    correlate,
    label_rois,
    open_frames,
    q_ring,
)
from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import atomic_path, check_writable
from gbsbi.io.mapsfile import Maps, write_maps
from gbsbi.summaries.phi import phi


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "correlate",
        help="two-time maps from photon-count frames (.npy stack or Eiger master HDF5)",
        description="Correlate photon-count frames into two-time maps C(t1, t2) = "
        "<n_p(t1) n_p(t2)>_p / (<n_p(t1)>_p <n_p(t2)>_p), one per ROI (q-rings or a label "
        "mask), in one pass over bands of detector rows (memory bounded by --chunk-pixels). "
        "Writes a gbsbi maps file with the checkerboard half-maps C_half_a, C_half_b beside "
        "C, and prints each ROI's plain and split-half Phi.",
    )
    p.add_argument("frames", metavar="FRAMES",
                   help="frames: .npy stack (T, rows, cols) or Eiger master file "
                   "(entry/data/data_000001, ...)")
    p.add_argument("--out", required=True, metavar="FILE", help="output maps file (HDF5)")
    roi = p.add_mutually_exclusive_group(required=True)
    roi.add_argument("--q-ring", nargs=2, type=float, action="append", metavar=("QMIN", "QMAX"),
                     help="a q-ring ROI, q in nm^-1 (QMIN <= q < QMAX); repeat for several")
    roi.add_argument("--labels", metavar="FILE",
                     help="integer label mask .npy (rows, cols): 0 excluded, each label one ROI")
    p.add_argument("--center", nargs=2, type=float, metavar=("ROW", "COL"),
                   help="beam centre in pixels, zero-based (Eiger default: beam_center_y, _x)")
    p.add_argument("--pixel-size", type=float, metavar="UM",
                   help="pixel size in micrometres (Eiger default: x_pixel_size)")
    p.add_argument("--distance", type=float, metavar="M",
                   help="sample-detector distance in m (Eiger default: detector_distance)")
    p.add_argument("--wavelength", type=float, metavar="ANGSTROM",
                   help="X-ray wavelength in Angstrom (Eiger default: incident_wavelength)")
    p.add_argument("--mask", metavar="FILE",
                   help="valid-pixel mask .npy (rows, cols): nonzero = use, 0 = dead/excluded "
                   "(combined with an Eiger file's pixel_mask)")
    p.add_argument("--temperature", type=float, metavar="K",
                   help="sample temperature in K (required unless the file has "
                   "entry/sample/temperature)")
    p.add_argument("--frame-time", type=float, metavar="S",
                   help="time between frames in s (Eiger default: "
                   "entry/instrument/detector/frame_time)")
    p.add_argument("--drop-frames", metavar="LIST",
                   help="frames to drop (NaN rows/cols), zero-based, e.g. 3,17,40-45")
    p.add_argument("--chunk-pixels", type=int, metavar="N",
                   help="detector pixels read per band (whole rows, at least one): memory about "
                   "T x N x (itemsize + 8) bytes (default: a band of "
                   f"{BAND_BYTES // 2**20} MiB)")
    p.add_argument("--split-block", type=int, default=1, metavar="PIXELS",
                   help="checkerboard block edge for the split halves, about the speckle size "
                   "(default 1)")
    p.set_defaults(func=run)


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


def _geometry(args: argparse.Namespace, info: DetectorInfo) -> Geometry:
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


def _rois(args: argparse.Namespace, info: DetectorInfo, shape: tuple[int, int]) -> list[Roi]:
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


def run(args: argparse.Namespace) -> int:
    out = check_writable(args.out)
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
        rois = _rois(args, info, (rows, cols))
        dropped = parse_frame_list(args.drop_frames, T) if args.drop_frames else None
        chunk = args.chunk_pixels
        if chunk is None:
            chunk = auto_chunk_pixels(T, np.dtype(source.dtype).itemsize)
        result = correlate(source, rois, chunk, dropped, progress=True)
    phi_plain = phi(result.C)
    phi_split = phi(result.C_half_a, result.C_half_b)
    config = {
        "frames": str(Path(args.frames).resolve()),
        "rois": [{"name": r.name, "q": r.q, "n_pixels": int(r.pixels.size)} for r in rois],
        "chunk_pixels": chunk, "split_block": args.split_block,
        "frame_time": frame_time, "temperature": temperature,
        "dropped": np.flatnonzero(result.dropped).tolist(),
    }
    _write(out, result, config, temperature, frame_time, Path(args.frames).stem,
           phi_plain, phi_split)
    _report(out, result, phi_plain, phi_split, T)
    return 0


def _write(out: Path, result: TwoTime, config: dict, temperature: float, frame_time: float,
           stem: str, phi_plain: np.ndarray, phi_split: np.ndarray) -> None:
    """The maps file, plus the half-maps and bookkeeping, written atomically."""
    n, T = result.C.shape[:2]
    maps = Maps(result.C, np.arange(T) * frame_time, np.full(n, temperature), result.q,
                scan=np.array([f"{stem}/{name}" for name in result.names]))
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    attrs = {"kind": "correlate", "config": text,
             "config_hash": hashlib.sha256(text.encode()).hexdigest()}
    with atomic_path(out) as tmp:
        write_maps(tmp, maps, attrs)
        with h5py.File(tmp, "a") as f:
            for name in ("C_half_a", "C_half_b"):
                f.create_dataset(name, data=getattr(result, name).astype(np.float32),
                                 chunks=(1, T, T), compression="gzip", shuffle=True)
            f["n_pixels"] = result.n_pixels
            f["mean_counts"] = result.mean_counts
            f["dropped"] = result.dropped
            f["phi"] = phi_plain
            f["phi_split_half"] = phi_split


def _report(out: Path, result: TwoTime, phi_plain: np.ndarray, phi_split: np.ndarray,
            T: int) -> None:
    width = max(len("ROI"), *(len(name) for name in result.names))
    print(f"{'ROI':<{width}}  q [nm^-1]  pixels  <n> [counts/px/frame]  Phi    Phi split-half")
    for k, name in enumerate(result.names):
        excluded = f" ({result.n_excluded[k]} excluded)" if result.n_excluded[k] else ""
        mean = np.nanmean(result.mean_counts[k])
        print(f"{name:<{width}}  {result.q[k]:9.4g}  {result.n_pixels[k].sum():6d}  "
              f"{mean:21.4g}  {phi_plain[k]:5.3f}  {phi_split[k]:6.3f}{excluded}")
    dropped = int(result.dropped.sum())
    print(f"wrote {out}: {len(result.names)} map(s) of {T} frames"
          f"{f', {dropped} dropped' if dropped else ''}")
