"""``gbsbi phi``: the non-equilibrium measure of every map in a maps file, plain and
noise-robust."""

import argparse
import sys

#: Bytes of maps read at a time (float32): memory stays bounded for long maps.
READ_BYTES = 256 * 2**20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phi",
        help="Phi of every map in a maps file: plain, noise-corrected and split-half",
        description="Print the non-equilibrium measure Phi of each map: the plain estimator "
        "(biased upward by photon noise), the noise-corrected one (from the map alone) and, "
        "where the file holds the maps of two pixel halves (C_half_a, C_half_b, as written by "
        "`gbsbi correlate`), the split-half one.",
    )
    p.add_argument("maps", help="maps file (docs/maps-file.md)")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import csv

    import numpy as np

    from gbsbi.io.atomic import atomic_path, check_new
    from gbsbi.io.mapsfile import open_maps_file
    from gbsbi.summaries.phi import phi
    from gbsbi.summaries.phi_noise import phi_corrected

    if args.csv:
        check_new(args.csv, args.overwrite)
    with open_maps_file(args.maps) as reader:
        temperature = reader.values("temperature", finite=True, positive=True)
        q = reader.values("q", finite=True, positive=True)
        names = reader.text("scan") if reader.has("scan") else [f"map {k}" for k in
                                                                  range(reader.n)]
        halves = reader.halves()
        plain, corrected, split = (np.full(reader.n, np.nan) for _ in range(3))
        step = max(1, READ_BYTES // (4 * reader.T * reader.T))
        for lo in range(0, reader.n, step):
            part = slice(lo, min(lo + step, reader.n))
            C = reader.maps(part)
            plain[part], corrected[part] = phi(C), phi_corrected(C)
            if halves:
                split[part] = phi(reader.maps(part, halves[0]), reader.maps(part, halves[1]))
    rows = [
        (str(name), temperature[k], q[k], plain[k], corrected[k], split[k])
        for k, name in enumerate(names)
    ]
    header = ("scan", "T [K]", "q [nm^-1]", "Phi plain", "Phi corrected", "Phi split-half")
    width = max(len(header[0]), *(len(r[0]) for r in rows))
    print(f"{header[0]:<{width}}  " + "  ".join(f"{h:>14}" for h in header[1:]))
    for row in rows:
        print(f"{row[0]:<{width}}  " + "  ".join(f"{v:>14.4g}" for v in row[1:]))
    if args.csv:
        with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0
