"""``gbsbi plot``: figures of a simulation bank."""

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="figures of a simulation bank",
        description="Write one map per Phi quartile (quartile_maps.png), mean Phi over each "
        "pair of parameters (phi_pairs.png) and cuts C(t1, t1 + tau) (cuts.png). Banks "
        "simulated as measured use their noise-corrected Phi.",
    )
    p.add_argument("bank", help="bank file written by `gbsbi simulate`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace figures that already exist in the folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gbsbi.io.atomic import check_new, output_folder
    from gbsbi.plots.bank import FIGURES, load_bank_summary, plot_bank

    load_bank_summary(args.bank)  # a bad bank is reported before any output is made
    if Path(args.out).is_dir():
        for name in FIGURES:
            check_new(Path(args.out) / name, args.overwrite)
    with output_folder(args.out) as out:
        for path in plot_bank(args.bank, out):
            print(f"wrote {path}")
    return 0
