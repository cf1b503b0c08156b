"""``gbsbi demo``: the main job on the embedded default configuration."""

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gbsbi.bank import BankSpec, simulate_bank
from gbsbi.errors import GbsbiError
from gbsbi.plots import load_bank_summary, plot_bank
from simulators.config import ExperimentConfig, Prior


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the pipeline on the embedded default configuration",
        description="Simulate a bank of maps with the default configuration and prior, and "
        "write its figures and a summary of Phi into an output folder.",
    )
    p.add_argument("--out", default="demo-output", metavar="DIR",
                   help="output folder (default demo-output)")
    p.add_argument("--n", type=int, default=2000, help="maps in the bank (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GbsbiError(f"cannot create output folder {out} ({err.strerror})") from None
    spec = BankSpec(ExperimentConfig(), Prior(), args.n, args.seed)
    bank = out / "bank.h5"
    with tqdm(total=spec.n, unit="map", desc="simulate", disable=None) as bar:
        simulate_bank(bank, spec, overwrite=True, progress=bar.update)
    for path in plot_bank(bank, out):
        print(f"wrote {path}")
    phis = load_bank_summary(bank)["phi"]
    q = np.percentile(phis, [0, 25, 50, 75, 100])
    print(f"wrote {bank}: {spec.n} maps")
    print("Phi over the prior: min {:.4f}  Q1 {:.3f}  median {:.3f}  Q3 {:.3f}  max {:.3f}".format(
        *q))
    return 0
