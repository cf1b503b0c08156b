"""``gbsbi ppc``: posterior predictive checks of every scan of a posterior file."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ppc",
        help="posterior predictive checks: maps simulated from the posterior vs the scan",
        description="For each scan, simulate maps from posterior draws with the fast "
        "measurement model at the scan's noise level (contrast and counts fitted to the map, "
        "see docs/validation.md) and compare: observed plain and noise-corrected Phi against their "
        "predictive distributions, cuts C(t1, t1 + tau) with predictive bands, the residual "
        "map. Writes DIR/ppc.json and DIR/ppc_<scan>.png.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="the model the posteriors came from")
    p.add_argument("maps", metavar="MAPS.h5", help="the maps file of the posteriors")
    p.add_argument("posteriors", metavar="POSTERIORS.nc", help="from `gbsbi infer`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--draws", type=positive_int, default=100,
                   help="posterior draws simulated per scan (default 100)")
    p.add_argument("--scans", type=positive_int, metavar="N", help="the first N scans only")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.validation.ppc_files import ppc_to_files

    ppc_to_files(args.model, args.maps, args.posteriors, args.out, draws=args.draws,
                 scans=args.scans, seed=args.seed, overwrite=args.overwrite)
    return 0
