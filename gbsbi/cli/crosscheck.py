"""``gbsbi crosscheck``: emcee on Phi alone against an NPE on (Phi, T), and what the map adds."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crosscheck",
        help="emcee with the Phi surrogate's likelihood against NPEs, per scan",
        description="For each scan, sample p(u | Phi_corr, T) with emcee through the model's "
        "Phi surrogate (walkers, burn-in and thinning from the autocorrelation time; R-hat and "
        "bulk ESS from ArviZ), compare it by C2ST (sbi.utils.metrics.c2st) with an NPE "
        "trained on (Phi_corr, T) only, and compare that with the model's map-based "
        "posterior. The Phi-only NPE is trained on the model's bank (--bank, default the path "
        "in model.json) and saved in DIR/phi_npe, or reused with --phi-npe. Writes "
        "DIR/crosscheck.json, DIR/crosscheck.png and DIR/overlay_<scan>.png.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("maps", metavar="MAPS.h5", help="maps file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--bank", metavar="BANK.h5", help="the model's training bank")
    p.add_argument("--phi-npe", metavar="DIR", help="reuse a Phi-only NPE (a DIR/phi_npe)")
    p.add_argument("--scans", type=positive_int, metavar="N", help="the first N scans only")
    p.add_argument("--draws", type=positive_int, default=2000,
                   help="draws of each NPE per scan, and C2ST set size (default 2000)")
    p.add_argument("--cache", metavar="DIR", help="folder to cache the bank's reduced inputs")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.validation.crosscheck import crosscheck_to_files

    crosscheck_to_files(args.model, args.maps, args.out, bank=args.bank, phi_npe=args.phi_npe,
                        scans=args.scans, draws=args.draws, cache=args.cache, seed=args.seed,
                        overwrite=args.overwrite)
    return 0
