"""``gbsbi plot``: figures of a simulation bank."""

import argparse

from gbsbi.plots import plot_bank


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="figures of a simulation bank",
        description="Write one map per Phi quartile (quartile_maps.png), mean Phi over each "
        "pair of parameters (phi_pairs.png) and cuts C(t1, t1 + tau) (cuts.png).",
    )
    p.add_argument("bank", help="bank file written by `gbsbi simulate`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for path in plot_bank(args.bank, args.out):
        print(f"wrote {path}")
    return 0
