"""``gbsbi demo``: the whole job on the embedded default configuration (:mod:`gbsbi.demo`)."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole job on the embedded default configuration",
        description="Simulate a bank of maps as measured and plot it; simulate "
        "pseudo-experiments (3 groups x 4 temperatures x 5 repeats, photon-counting noise, "
        "known theta); train a posterior estimator adapted to the pseudo-experiments' maps; "
        "write the posterior of every pseudo-experiment (NetCDF, CSV, corner plots with the "
        "true values, intervals against temperature) and print how well they cover the "
        "truth; check the calibration, run predictive checks of a few scans, join each "
        "material's temperature series (gbsbi group --law arrhenius) and write report.html. "
        "About 4 minutes on 2 cores.",
    )
    p.add_argument("--out", default="demo-output", metavar="DIR",
                   help="output folder (default demo-output)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds), for tests")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed, overwrite=args.overwrite)
    return 0
