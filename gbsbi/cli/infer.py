"""``gbsbi infer``: posteriors for every scan of a maps file, as ArviZ NetCDF, CSV and plots;
point estimates as a CSV for a point model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    from gbsbi.errors import GbsbiError
    from gbsbi.inference.infer import infer_to_files, outputs
    from gbsbi.inference.model import load_model
    from gbsbi.io.atomic import check_writable
    from gbsbi.io.estimates import record_beside

    out, csv_path, plots = outputs(check_writable(args.out))
    model = load_model(args.model)
    point = model.spec.estimator == "point"
    targets = (csv_path, record_beside(csv_path)) if point else (out, csv_path, plots)
    existing = [p for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise GbsbiError(f"{existing[0]} exists; pass --overwrite to replace it")
    if not point and (args.draws < 4 or args.draws % 4):
        raise GbsbiError(f"--draws must be a positive multiple of 4, got {args.draws}")
    if not point and args.head != "auto":
        raise GbsbiError(f"--head {args.head}: {args.model} is a posterior estimator, it has "
                         "no heads (only point models do)")

    def warn(line: str) -> None:
        print(f"gbsbi infer: warning: {line}", file=sys.stderr)

    if point:
        from gbsbi.inference.data import scan_inputs
        from gbsbi.inference.infer import outside_temperature

        scans = scan_inputs(args.maps, model.spec.experiment, model.spec.inputs)
        for note in scans.notes:
            print(note)
        for line in outside_temperature(model, scans):
            warn(line)
        return point_estimates(args, model, scans, csv_path)
    infer_to_files(model, args.maps, out, args.draws, args.seed, not args.no_plots, warn=warn)
    return 0


def point_estimates(args: argparse.Namespace, model, scans, csv_path: Path) -> int:  # noqa: ANN001
    """The point model's part of :func:`run`: the CSV of estimates and its JSON record."""
    from gbsbi.inference.point_infer import point_estimates as estimate
    from gbsbi.io.estimates import NOTICE, estimate_rows, format_estimates, write_estimates

    estimates, notes = estimate(model, scans, args.head)
    for note in notes:
        print(f"gbsbi infer: note: {note}", file=sys.stderr)
    rows = estimate_rows(estimates)
    record = {"estimator": "point", "model": str(args.model), "model_hash": model.hash,
              "maps": str(args.maps), "maps_hash": scans.content_hash, "head": args.head}
    csv_path, side = write_estimates(csv_path, rows, record)
    print(format_estimates(rows))
    print(f"wrote {csv_path} ({len(rows)} scans: {NOTICE}) and {side}")
    return 0
