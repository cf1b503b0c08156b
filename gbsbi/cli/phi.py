"""``gbsbi phi``: the non-equilibrium measure of every map in a maps file, plain and
noise-robust."""

import argparse
import csv
import sys

import h5py
import numpy as np

from gbsbi.io.mapsfile import read_maps
from gbsbi.summaries.phi import phi
from gbsbi.summaries.phi_noise import phi_corrected


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phi",
        help="Phi of every map in a maps file: plain, noise-corrected and split-half",
        description="Print the non-equilibrium measure Phi of each map: the plain estimator "
        "(biased upward by photon noise), the noise-corrected one (from the map alone) and, "
        "where the file holds the maps of two pixel halves (C_half_a, C_half_b, as written by "
        "`gbsbi correlate`), the split-half one.",
    )
    p.add_argument("maps", help="maps file (SPEC section 5)")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    maps = read_maps(args.maps)
    plain = phi(maps.C)
    corrected = phi_corrected(maps.C)
    with h5py.File(args.maps, "r") as f:
        halves = [f[k][()] for k in ("C_half_a", "C_half_b") if k in f]
    split = phi(*halves) if len(halves) == 2 else np.full(len(maps), np.nan)
    names = maps.scan if maps.scan is not None else [f"map {k}" for k in range(len(maps))]
    rows = [
        (str(name), maps.temperature[k], maps.q[k], plain[k], corrected[k], split[k])
        for k, name in enumerate(names)
    ]
    header = ("scan", "T [K]", "q [nm^-1]", "Phi plain", "Phi corrected", "Phi split-half")
    width = max(len(header[0]), *(len(r[0]) for r in rows))
    print(f"{header[0]:<{width}}  " + "  ".join(f"{h:>14}" for h in header[1:]))
    for row in rows:
        print(f"{row[0]:<{width}}  " + "  ".join(f"{v:>14.4g}" for v in row[1:]))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0
