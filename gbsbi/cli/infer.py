"""``gbsbi infer``: posteriors for every scan of a maps file, as ArviZ NetCDF, CSV and plots."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="posteriors of D, sigma and c for every scan of a maps file",
        description="Sample the posterior of each scan with a trained model and write them as "
        "an ArviZ NetCDF file (groups posterior, constant_data, observed_data), a CSV beside it "
        "(mean, sd, 5%% and 95%% quantiles per parameter), a corner plot per scan and a figure "
        "of all intervals against temperature (in the folder OUT-plots/). Maps on another "
        "number of frames over the model's window are resampled; another q or window is "
        "refused.",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="model directory from `gbsbi train`")
    p.add_argument("maps", metavar="MAPS.h5", help="maps file")
    p.add_argument("--out", required=True, metavar="POSTERIORS.nc", help="posterior file")
    p.add_argument("--draws", type=int, default=4000, help="draws per scan (default 4000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws (default 0)")
    p.add_argument("--no-plots", action="store_true", help="write no figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.errors import GbsbiError
    from gbsbi.inference.infer import infer_to_files, outputs
    from gbsbi.inference.model import load_model
    from gbsbi.io.atomic import check_writable

    check_writable(args.out)
    existing = [p for p in outputs(args.out) if p.exists()]
    if existing and not args.overwrite:
        raise GbsbiError(f"{existing[0]} exists; pass --overwrite to replace it")
    if args.draws < 4 or args.draws % 4:
        raise GbsbiError(f"--draws must be a positive multiple of 4, got {args.draws}")
    model = load_model(args.model)
    infer_to_files(model, args.maps, args.out, args.draws, args.seed, not args.no_plots,
                   warn=lambda line: print(f"gbsbi infer: warning: {line}", file=sys.stderr))
    return 0
