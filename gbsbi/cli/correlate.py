"""``gbsbi correlate``: photon-count frames to a maps file of two-time maps, one per ROI."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gbsbi.cli.args import finite_float, nonnegative_float, positive_float, positive_int
from gbsbi.errors import GbsbiError

if TYPE_CHECKING:  # h5py, scipy and tqdm load when the command runs, not for --help
    import numpy as np

    from gbsbi.correlator import DetectorInfo, Geometry, Roi
    from gbsbi.correlator.frames import FrameSource

#: The correlator's budgets in MiB (gbsbi.correlator BAND_BYTES and store.STORE_BYTES; a test
#: keeps them equal), written here so that --help does not load numpy.
BAND_MIB, STORE_MIB = 256, 512


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "correlate",
        help="two-time maps from photon-count frames (.npy stack or Eiger master HDF5)",
        description="Correlate photon-count frames into two-time maps C(t1, t2) = "
        "<n_p(t1) n_p(t2)>_p / (<n_p(t1)>_p <n_p(t2)>_p), one per ROI (q-rings or a label "
        "mask). The frames are read once (every compressed chunk of an Eiger file is "
        "decompressed once) into a pixel-major store of the ROI pixels' counts, in memory up "
        f"to {STORE_MIB} MiB and otherwise in a scratch file (--scratch); then "
        "each ROI is correlated in bands of --chunk-pixels pixels. Memory: about 2.5 GB at "
        "10,000 frames, whatever the number of ROIs and pixels. Writes a gbsbi maps file "
        "with the checkerboard half-maps C_half_a, C_half_b beside C, and prints each ROI's "
        "plain and split-half Phi.",
    )
    p.add_argument("frames", metavar="FRAMES",
                   help="frames: .npy stack (T, rows, cols) or Eiger master file "
                   "(entry/data/data_000001, ...)")
    p.add_argument("--out", required=True, metavar="FILE", help="output maps file (HDF5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    roi = p.add_mutually_exclusive_group(required=True)
    roi.add_argument("--q-ring", nargs=2, type=nonnegative_float, action="append",
                     metavar=("QMIN", "QMAX"),
                     help="a q-ring ROI, q in nm^-1 (QMIN <= q < QMAX); repeat for several")
    roi.add_argument("--labels", metavar="FILE",
                     help="integer label mask .npy (rows, cols): 0 excluded, each label one ROI")
    p.add_argument("--center", nargs=2, type=finite_float, metavar=("ROW", "COL"),
                   help="beam centre in pixels, zero-based (Eiger default: beam_center_y, _x)")
    p.add_argument("--pixel-size", type=positive_float, metavar="UM",
                   help="pixel size in micrometres (Eiger default: x_pixel_size)")
    p.add_argument("--distance", type=positive_float, metavar="M",
                   help="sample-detector distance in m (Eiger default: detector_distance)")
    p.add_argument("--wavelength", type=positive_float, metavar="ANGSTROM",
                   help="X-ray wavelength in Angstrom (Eiger default: incident_wavelength)")
    p.add_argument("--mask", metavar="FILE",
                   help="valid-pixel mask .npy (rows, cols): nonzero = use, 0 = dead/excluded "
                   "(combined with an Eiger file's pixel_mask)")
    p.add_argument("--temperature", type=positive_float, metavar="K",
                   help="sample temperature in K (required unless the file has "
                   "entry/sample/temperature)")
    p.add_argument("--frame-time", type=positive_float, metavar="S",
                   help="time between frames in s (Eiger default: "
                   "entry/instrument/detector/frame_time)")
    p.add_argument("--drop-frames", metavar="LIST",
                   help="frames to drop (NaN rows/cols), zero-based, e.g. 3,17,40-45")
    p.add_argument("--chunk-pixels", type=positive_int, metavar="N",
                   help="ROI pixels correlated per band: memory about T x N x (itemsize + 8) "
                   f"bytes (default: a band of {BAND_MIB} MiB)")
    p.add_argument("--split-block", type=positive_int, default=1, metavar="PIXELS",
                   help="checkerboard block edge for the split halves, about the speckle size "
                   "(default 1)")
    p.add_argument("--scratch", metavar="DIR",
                   help="folder for the scratch file of the ROI pixels' counts when they exceed "
                   f"{STORE_MIB} MiB, T x pixels x itemsize bytes (default: the "
                   "system temp folder, $TMPDIR)")
    p.set_defaults(func=run)


def parse_frame_list(text: str, n_frames: int) -> np.ndarray:
    """Parse ``3,17,40-45`` into a boolean flag per frame.

    Args:
        text: comma-separated zero-based frame indices and inclusive ranges.
        n_frames: number of frames T.

    Returns:
        Flags, shape (T,), bool.
    """
    import numpy as np

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
    import numpy as np

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
    from gbsbi.correlator import Geometry

    return Geometry(**values)


def _rois(args: argparse.Namespace, info: DetectorInfo, shape: tuple[int, int]) -> list[Roi]:
    """The ROIs from --q-ring or --labels, with the file's pixel mask and --mask applied."""
    import numpy as np

    from gbsbi.correlator import label_rois, q_ring

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
    import numpy as np

    value = flag_value if flag_value is not None else file_value
    if value is None:
        raise GbsbiError(f"{flag} ({unit}) is required: {frames} has no {where}")
    if not (np.isfinite(value) and value > 0):
        raise GbsbiError(f"{flag} must be > 0 {unit}, got {value}")
    return float(value)


def run(args: argparse.Namespace) -> int:
    import hashlib
    import json

    import numpy as np

    from gbsbi.correlator import EigerFrames, auto_chunk_pixels, open_frames
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
            print(note)
        rois = _rois(args, info, (rows, cols))
        flagged = parse_frame_list(args.drop_frames, T) if args.drop_frames else np.zeros(T, bool)
        chunk = args.chunk_pixels
        if chunk is None:
            chunk = auto_chunk_pixels(T, np.dtype(source.dtype).itemsize)
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
    _report(out, rois, report, T)
    return 0


def _write(out: Path, source: FrameSource, rois: list[Roi], chunk: int, flagged: np.ndarray,
           scratch: str | None, attrs: dict, t: np.ndarray, temperature: float,
           stem: str) -> dict[str, np.ndarray]:
    """Correlate ROI by ROI into the maps file (written atomically), each map as soon as it is
    computed, then the bookkeeping and each ROI's Phi, read back one ROI at a time.

    Returns:
        The bookkeeping datasets and the Phi of each ROI, for the report.
    """
    import h5py
    import numpy as np

    from gbsbi.correlator import MAP_NAMES, correlate_rois, dropped_frames, mean_counts
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


def _report(out: Path, rois: list[Roi], report: dict[str, np.ndarray], T: int) -> None:
    import numpy as np

    width = max(len("ROI"), *(len(roi.name) for roi in rois))
    print(f"{'ROI':<{width}}  q [nm^-1]  pixels  <n> [counts/px/frame]  Phi    Phi split-half")
    for k, roi in enumerate(rois):
        n_excluded = report["n_excluded"][k]
        excluded = f" ({n_excluded} excluded)" if n_excluded else ""
        mean = np.nanmean(report["mean_counts"][k])
        print(f"{roi.name:<{width}}  {roi.q:9.4g}  {report['n_pixels'][k].sum():6d}  "
              f"{mean:21.4g}  {report['phi'][k]:5.3f}  {report['phi_split_half'][k]:6.3f}"
              f"{excluded}")
    dropped = int(report["dropped"].sum())
    print(f"wrote {out}: {len(rois)} map(s) of {T} frames"
          f"{f', {dropped} dropped' if dropped else ''}")
