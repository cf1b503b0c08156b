"""``gbsbi correlate``: photon-count frames to a maps file of two-time maps, one per ROI."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import finite_float, nonnegative_float, positive_float, positive_int

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


def run(args: argparse.Namespace) -> int:
    from gbsbi.correlator.to_file import CorrelateRequest, correlate_to_file

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    options["q_ring"] = None if args.q_ring is None else tuple(map(tuple, args.q_ring))
    options["center"] = None if args.center is None else tuple(args.center)
    correlate_to_file(CorrelateRequest(**options))
    return 0
