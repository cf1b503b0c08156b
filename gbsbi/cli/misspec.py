"""``gbsbi misspec``: are the scans of a maps file like the model's simulations?"""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "misspec",
        help="misspecification tests of a maps file against the model's simulations",
        description="Per scan, the p-value of its embedding f(x) under a density of f fitted "
        "on held-out simulations (sbi's calc_misspecification_logprob test), flagged below "
        "--alpha; for the whole file, sbi's MMD test on f (calc_misspecification_mmd). Writes "
        "DIR/misspec.json and DIR/misspec.png. `gbsbi train` fits the density into the model "
        "directory; for a model trained without it, --fit-reference BANK.h5 (the model's "
        "training bank) fits it on the same held-out split.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("maps", metavar="MAPS.h5", nargs="?", help="maps file to test")
    p.add_argument("--out", metavar="DIR", help="output folder (with MAPS.h5)")
    p.add_argument("--fit-reference", metavar="BANK.h5",
                   help="fit the reference density into MODEL_DIR from its training bank")
    p.add_argument("--cache", metavar="DIR", help="folder to cache the bank's reduced inputs")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the MMD permutations (0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DIR, or a reference the model already has")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.errors import GbsbiError
    from gbsbi.validation.misspecification import fit_reference_to_model, misspec_to_files

    if args.fit_reference is not None:
        fit_reference_to_model(args.model, args.fit_reference, cache=args.cache,
                               overwrite=args.overwrite)
        if args.maps is None:
            return 0
    if args.maps is None or args.out is None:
        raise GbsbiError("give MAPS.h5 and --out DIR (or --fit-reference BANK.h5)")
    misspec_to_files(args.model, args.maps, args.out, seed=args.seed, overwrite=args.overwrite)
    return 0
