"""``gbsbi infer``: posteriors for every scan of a maps file, as ArviZ NetCDF, CSV and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="posteriors of D, sigma and c for every scan of a maps file",
        description="Sample the posterior of each scan with a trained model and write them as "
        "an ArviZ NetCDF file (groups posterior, constant_data, observed_data), a CSV beside it "
        "(mean, sd, 5%% and 95%% quantiles per parameter), a corner plot per scan and a figure "
        "of all intervals against temperature (in the folder OUT-plots/). Each scan also gets "
        "the p-value of a misspecification test (is its embedding like those of the "
        "simulations?), stored in the file, printed, and a warning for each scan below the "
        "level. Maps on another "
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


def outputs(out: Path) -> tuple[Path, Path]:
    """The CSV and the plots folder that go with a posterior file."""
    from gbsbi.io.posteriors import csv_beside

    return csv_beside(out), out.with_name(out.stem + "-plots")


def run(args: argparse.Namespace) -> int:
    from gbsbi.errors import GbsbiError
    from gbsbi.io.atomic import check_writable

    out = check_writable(args.out)
    csv_path, plots = outputs(out)
    existing = [p for p in (out, csv_path, plots) if p.exists()]
    if existing and not args.overwrite:
        raise GbsbiError(f"{existing[0]} exists; pass --overwrite to replace it")
    if args.draws < 4 or args.draws % 4:
        raise GbsbiError(f"--draws must be a positive multiple of 4, got {args.draws}")

    from gbsbi.inference.data import scan_inputs
    from gbsbi.inference.infer import (
        draw_posteriors,
        misspecification_warnings,
        outside_temperature,
        with_misspecification,
    )
    from gbsbi.inference.model import load_model
    from gbsbi.inference.posterior import GbPosterior
    from gbsbi.io.posteriors import format_table, summary_rows, write_csv, write_posterior

    model = load_model(args.model)
    spec = model.spec
    scans = scan_inputs(args.maps, spec.experiment, spec.inputs)
    for note in scans.notes:
        print(note)
    for warning in outside_temperature(GbPosterior(model), scans):
        print(f"gbsbi infer: warning: {warning}", file=sys.stderr)
    posterior = GbPosterior(model)
    draws = draw_posteriors(posterior, scans, args.draws, seed=args.seed)
    draws = with_misspecification(model, scans, draws)
    attrs = {"model": str(args.model), "model_hash": model.hash, "maps": str(args.maps),
             "maps_hash": scans.content_hash, "seed": args.seed, "estimator": spec.estimator,
             "draws_per_scan": args.draws}
    write_posterior(out, draws, attrs)
    rows = summary_rows(draws)
    write_csv(csv_path, rows)
    print(format_table(rows, draws.alpha))
    for warning in misspecification_warnings(model, draws):
        print(f"gbsbi infer: warning: {warning}", file=sys.stderr)
    print(f"wrote {out} ({len(rows)} scans x {args.draws} draws) and {csv_path}")
    if not args.no_plots:
        from gbsbi.posterior_plots import corner_plots, intervals_plot

        plots.mkdir(exist_ok=True)
        corner_plots(draws, spec.prior, plots)
        intervals_plot(draws, spec.prior, plots / "intervals.png")
        print(f"wrote {len(rows)} corner plots and intervals.png to {plots}")
    return 0
