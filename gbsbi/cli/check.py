"""``gbsbi check``: calibration and accuracy of a model on simulations with known parameters."""

from __future__ import annotations

import argparse

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="calibration and accuracy of a model on held-out simulations",
        description="Sample the model's posterior for simulations with known parameters (a "
        "bank from `gbsbi simulate` never used in training, or pseudo-experiments) and write "
        "to DIR: check.json (R^2 and RMSE of the posterior mean of D, log10 sigma and c; 90% "
        "coverage and width; expected coverage of central intervals per parameter and of the "
        "joint highest-density region; SBC with sbi's run_sbc/check_sbc; TARP with "
        "run_tarp/check_tarp), check.npz (per simulation), coverage.png, sbc_ranks.png, "
        "tarp.png and predicted.png.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("test", metavar="TEST.h5", help="held-out bank or pseudo-experiments")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--n", type=positive_int, default=1000,
                   help="simulations to check, the first N of the file (default 1000)")
    p.add_argument("--draws", type=positive_int, default=1000, help="draws per simulation (1000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--cache", metavar="DIR", help="folder to cache a bank's reduced inputs")
    p.add_argument("--overwrite", action="store_true", help="replace DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.validation.check import check_to_files

    check_to_files(args.model, args.test, args.out, n=args.n, draws=args.draws, seed=args.seed,
                   cache=args.cache, overwrite=args.overwrite)
    return 0
