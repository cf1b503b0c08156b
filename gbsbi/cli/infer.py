"""``gbsbi infer``: posteriors for every scan of a maps file, as ArviZ NetCDF, CSV and plots;
point estimates as a CSV for a point model."""

from __future__ import annotations

import argparse
import sys

from gbsbi.cli.args import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="posteriors of D, sigma and c for every scan of a maps file",
        description="Sample the posterior of each scan with a trained model and write them as "
        "an ArviZ NetCDF file (groups posterior, constant_data, observed_data), a CSV beside it "
        "(mean, sd, 5% and 95% quantiles per parameter), a corner plot per scan and a figure "
        "of all intervals against temperature (in the folder OUT-plots/). Each scan also gets "
        "the p-value of a misspecification test (is its embedding like those of the "
        "simulations?), stored in the file, printed, and a warning for each scan below the "
        "level. Maps on another "
        "number of frames over the model's window are resampled; another q or window is "
        "refused. For a point model (`gbsbi train --estimator point`) it writes only the CSV "
        "(OUT with suffix .csv: columns D, sigma, c and the head used, no intervals) and a "
        "JSON record beside it: a point estimator has no posterior, so no NetCDF and no "
        "plots.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("maps", metavar="MAPS.h5", help="maps file")
    p.add_argument("--out", required=True, metavar="POSTERIORS.nc", help="posterior file")
    p.add_argument("--draws", type=positive_int, default=4000, help="draws per scan (default 4000)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="random seed of the draws (default 0)")
    p.add_argument("--no-plots", action="store_true", help="write no figures")
    p.add_argument("--head", choices=("auto", "global", "group"), default="auto",
                   help="point models: auto (default) the head fine-tuned for each scan's "
                   "group where there is one, else the model's own; global the model's own "
                   "for every scan; group a group head for every scan (refused when the model "
                   "has none)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.inference.infer import run_infer

    def warn(line: str) -> None:
        print(f"gbsbi infer: warning: {line}", file=sys.stderr)

    run_infer(args.model, args.maps, args.out, draws=args.draws, seed=args.seed,
              plots=not args.no_plots, heads=args.head, overwrite=args.overwrite, warn=warn)
    return 0
