"""``gbsbi demo``: the main job on the embedded default configuration."""

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gbsbi.bank import BankSpec, simulate_bank
from gbsbi.io.atomic import ensure_folder
from gbsbi.plots import load_bank_summary, plot_bank
from simulators.config import ExperimentConfig, Prior


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the pipeline on the embedded default configuration",
        description="Simulate a bank of maps with the default configuration and prior and "
        "write its figures; then simulate pseudo-experiments as measured (3 groups x 4 "
        "temperatures x 5 repeats, photon-counting noise) and compare the plain and the "
        "noise-corrected Phi with the true one.",
    )
    p.add_argument("--out", default="demo-output", metavar="DIR",
                   help="output folder (default demo-output)")
    p.add_argument("--n", type=int, default=2000, help="maps in the bank (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = ensure_folder(args.out)
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
    _pseudo(out, args.seed)
    return 0


def _pseudo(out: Path, seed: int) -> None:
    """Pseudo-experiments with the fast noise model, and their Phi table."""
    from gbsbi.io.mapsfile import write_maps
    from gbsbi.pseudo import PseudoSpec, pseudo_experiments
    from simulators.config import MeasurementPrior, config_hash

    spec = PseudoSpec(mode="fast", seed=seed)
    with tqdm(total=60, unit="map", desc="pseudo-experiments", disable=None) as bar:
        maps, extra = pseudo_experiments(spec, ExperimentConfig(), Prior(), MeasurementPrior(),
                                         progress=bar.update)
    path = out / "pseudo_experiments.h5"
    text = spec.to_json(ExperimentConfig(), Prior(), MeasurementPrior())
    write_maps(path, maps, extra=extra, attrs={
        "kind": "pseudo-experiments", "config": text, "config_hash": config_hash(text)})
    print(f"wrote {path}: {len(maps)} measured maps ({spec.counts} photons per pixel per "
          f"frame, {spec.n_pix} pixels)")
    print(f"{'group':<8} {'T [K]':>6} {'Phi true':>9} {'plain':>7} {'corrected':>10}")
    for g in np.unique(maps.group):
        for t in spec.temperatures:
            k = (maps.group == g) & (maps.temperature == t)
            true, plain = np.mean(extra["phi_noiseless"][k]), np.mean(extra["phi"][k])
            corrected = np.nanmean(extra["phi_corrected"][k])
            print(f"{g:<8} {t:>6.0f} {true:>9.3f} {plain:>7.3f} {corrected:>10.3f}")
    error = np.abs(extra["phi_corrected"] - extra["phi_noiseless"])
    print(f"median |Phi - Phi_true|: plain "
          f"{np.median(np.abs(extra['phi'] - extra['phi_noiseless'])):.3f}, "
          f"corrected {np.nanmedian(error):.3f}")
