"""``gbsbi report``: one self-contained HTML page of a run folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page of a run",
        description="Write one HTML page (images embedded, no other file needed) of a run "
        "folder: RUN_DIR/posteriors.nc from `gbsbi infer` (with its -plots folder) and, where "
        "present, RUN_DIR/check, RUN_DIR/misspec, RUN_DIR/ppc and RUN_DIR/crosscheck from the "
        "commands of the same names (see docs/validation.md).",
    )
    p.add_argument("run", metavar="RUN_DIR", help="the run folder")
    p.add_argument("--out", required=True, metavar="REPORT.html", help="the page to write")
    p.add_argument("--overwrite", action="store_true", help="replace REPORT.html")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.validation.report import write_report

    path = write_report(args.run, args.out, overwrite=args.overwrite)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
