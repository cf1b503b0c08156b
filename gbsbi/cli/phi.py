"""``gbsbi phi``: the non-equilibrium measure of every map in a maps file, plain and
noise-robust."""

import argparse
import sys


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
    from gbsbi.summaries.table import format_phi_table, phi_table, write_phi_csv

    if args.csv:
        from gbsbi.io.atomic import check_new

        check_new(args.csv, args.overwrite)
    rows = phi_table(args.maps)
    print(format_phi_table(rows))
    if args.csv:
        write_phi_csv(args.csv, rows)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0
