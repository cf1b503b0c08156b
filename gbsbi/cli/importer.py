"""``gbsbi import``: convert two-time maps from beamline files into one maps file.

(The module is named ``importer`` because ``import`` is a Python keyword.)
"""

from __future__ import annotations

import argparse
import sys

from gbsbi.cli.args import positive_float, positive_int
from gbsbi.errors import GbsbiError
from gbsbi.io.rawmaps import FORMATS

#: The model's frames, ExperimentConfig().n_frames (a test keeps them equal), written here so
#: that --help does not load numpy.
MODEL_FRAMES = 128

DESCRIPTION = f"""\
Read two-time maps C(t1, t2) from FILEs and write them, full and symmetric, on one frame grid,
to a gbsbi maps file (docs/maps-file.md). Give the files first, then the flags: a flag that
takes several values (--temperature, --q, ...) would also take a file named after it. Layouts:
APS 8-ID-I results files (aps: NeXus era, aps-legacy: /exchange/C2T_all), pyCHX g12b arrays
(.npy or a dataset of an .h5), plain .npy matrices or (n, T, T) stacks, and text matrices.
Temperature, q and frame time come from the file where it records them (a temperature without
units is read as degC, with a note); a flag, when given, wins; a value neither gives is an error
naming the flag. Maps are binned (T a multiple of the target) or linearly interpolated onto --frames
frames (default {MODEL_FRAMES}, the model's grid) over the same time window."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``import`` sub-command to the command line."""
    p = sub.add_parser(
        "import", help="convert beamline two-time maps into a maps file", description=DESCRIPTION,
        usage="gbsbi import FILE [FILE ...] --out OUT [options]",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="input files, concatenated in order")
    p.add_argument("--out", required=True, help="output maps file (HDF5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--format", default="auto", choices=FORMATS,
        help="input layout (default: auto, by extension and HDF5 content)",
    )
    p.add_argument("--key", help="dataset of pyCHX g12b maps in an .h5 file (implies pychx)")
    p.add_argument(
        "--temperature", type=positive_float, nargs="+", metavar="K",
        help="temperature in K: one value, one per map or one per file",
    )
    p.add_argument(
        "--q", type=positive_float, nargs="+", metavar="NM-1",
        help="q in nm^-1: one value, one per map or one per file",
    )
    p.add_argument(
        "--frame-time", type=positive_float, nargs="+", metavar="S",
        help="time between stored frames in s: one value or one per file",
    )
    p.add_argument("--scan", nargs="+", metavar="NAME", help="scan names, one per map or file")
    p.add_argument(
        "--group", nargs="+", metavar="NAME",
        help="material or grain-size group: one, one per map or one per file",
    )
    p.add_argument(
        "--frames", type=positive_int, metavar="N",
        help=f"frames T of the output grid (default {MODEL_FRAMES}, the model's)",
    )
    p.add_argument(
        "--no-resample", action="store_true",
        help="keep the native frame grid (all inputs must share it)",
    )
    p.add_argument(
        "--window", type=positive_float, metavar="S",
        help="cut each map into windows of S seconds along its diagonal (long measurements); "
        "each window is a scan with its age (its start) in the dataset 'age'",
    )
    p.add_argument("--stride", type=positive_float, metavar="S",
                   help="seconds between the starts of consecutive windows (with --window)")
    p.set_defaults(func=run)


def _tuple(values: list | None) -> tuple | None:
    return None if values is None else tuple(values)


def run(args: argparse.Namespace) -> int:
    """Import the files and write the maps file; returns the exit status."""
    from gbsbi.io.atomic import check_new
    from gbsbi.io.importers import DEFAULT_FRAMES, ImportOptions, import_maps
    from gbsbi.io.mapsfile import write_maps

    if args.no_resample and args.frames is not None:
        raise GbsbiError("--frames and --no-resample contradict each other; pass one")
    if (args.window is None) != (args.stride is None):
        raise GbsbiError("--window and --stride go together: give both")
    out = check_new(args.out, args.overwrite)
    n_frames = DEFAULT_FRAMES if args.frames is None else args.frames
    options = ImportOptions(
        fmt=args.format,
        key=args.key,
        temperature=_tuple(args.temperature),
        q=_tuple(args.q),
        frame_time=_tuple(args.frame_time),
        scan=_tuple(args.scan),
        group=_tuple(args.group),
        n_frames=None if args.no_resample else n_frames,
        window=args.window,
        stride=args.stride,
    )
    result = import_maps(args.files, options)
    write_maps(out, result.maps)
    for line in result.warnings:
        print(f"gbsbi import: warning: {line}", file=sys.stderr)
    for line in result.notes:
        print(line)
    maps = result.maps
    T = maps.C.shape[1]
    print(
        f"wrote {out}: {len(maps)} map(s), {T} frames, dt = {maps.t[1]:.4g} s "
        f"(window {maps.t[1] * T:.4g} s)"
    )
    return 0
