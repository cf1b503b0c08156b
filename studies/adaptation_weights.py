"""Study: the default weights of CORAL and of the Phi term in `gbsbi train --experimental`.

For each pair (lambda_C, lambda_Phi) of a grid, a model is trained on one measured bank and
adapted to the exact-measurement pseudo-experiments (unlabelled), as `gbsbi demo` does; each
is scored on
- the pseudo-experiments (known theta): fraction of 90 % intervals covering the truth, per
  parameter, and the RMSE of the posterior means (D, log10 sigma, c);
- held-out simulations: R^2 of the posterior means and the largest deviation of the central
  coverage from nominal (levels 0.1 ... 0.9), so that a weight that helps the pseudo-experiments
  by breaking the posterior on the prior is seen.
Pseudo-experiments are a few groups of one theta each: their maps are distributed unlike the
prior, the case in which Elsemueller et al. (2025) found alignment of summary spaces hurts.

Results: studies/results/adaptation_weights.{md,json}.

Usage: python studies/adaptation_weights.py [--work DIR] [--n-train 20000] [--epochs 40]
       [--grid 0:0,0.1:0,1:0,10:0,0:1,0.1:1,1:1,0:10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from npe_accuracy import ensure_bank, ensure_pseudo  # the sibling study's banks

from gbsbi.inference.config import TrainConfig
from gbsbi.inference.data import bank_inputs, scan_inputs
from gbsbi.inference.model import load_model
from gbsbi.inference.npe.config import settings
from gbsbi.inference.pipeline import train_model
from gbsbi.validation.calibration import central_coverage, r2_score, rmse
from gbsbi.validation.check import run_check

RESULTS = Path(__file__).parent / "results"
NAMES = ("D", "log10 sigma", "c")
LEVELS = np.round(np.arange(0.1, 0.91, 0.1), 1)


def parse_grid(text: str) -> list[tuple[float, float]]:
    pairs = []
    for item in text.split(","):
        coral, phi = item.split(":")
        pairs.append((float(coral), float(phi)))
    return pairs


def score(model, pseudo, held_x, held_theta) -> dict:
    prior = model.spec.prior
    scans = scan_inputs(pseudo, model.spec.experiment, model.spec.inputs)
    ev = run_check(model, scans.x, prior.to_unit(scans.maps.theta), draws=1000, seed=0,
                   batch=250, diagnostics=False)
    held = run_check(model, held_x, prior.to_unit(held_theta), draws=500, seed=0, batch=250,
                     diagnostics=True)  # the SBC ranks, for the coverage curve
    coverage = central_coverage(held.rank / held.draws, LEVELS)
    return {
        "pseudo_coverage_90": ev.contains.mean(0).round(3).tolist(),
        "pseudo_rmse": rmse(ev.truth, ev.mean).tolist(),
        "pseudo_width_90": ev.width.mean(0).tolist(),
        "heldout_r2": r2_score(held.truth, held.mean).round(4).tolist(),
        "heldout_max_coverage_error": np.abs(coverage - LEVELS[:, None]).max(0).round(3).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("npe-study"))
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-heldout", type=int, default=5_000)
    parser.add_argument("--eval", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--grid", default="0:0,0.1:0,1:0,10:0,0:1,0.1:1,1:1,0:10")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bank = ensure_bank(args.work / f"train{args.n_train}.h5", args.n_train, seed=14)
    heldout = ensure_bank(args.work / "heldout.h5", args.n_heldout, seed=12)
    pseudo = ensure_pseudo(args.work / "pseudo_exact.h5", seed=13)
    cache = args.work / "cache"
    results = []
    held = None
    for coral, phi in parse_grid(args.grid):
        out = args.work / f"weights-c{coral:g}-p{phi:g}"
        if not (out / "model.json").exists():
            training, estimator = settings(TrainConfig(epochs=args.epochs), True, coral, phi,
                                           members=1)
            train_model(bank, out, training, estimator, experimental=pseudo, cache=cache,
                        overwrite=True)
        model = load_model(out)
        if held is None:
            held = bank_inputs(heldout, model.spec.inputs, cache=cache)
        figures = score(model, pseudo, held.x[: args.eval], held.theta[: args.eval])
        results.append({"coral": coral, "phi": phi, **figures})
        print(results[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    table = RESULTS / "adaptation_weights.json"
    if table.exists():  # rows of earlier grids stay, the same weights are replaced
        done = {(r["coral"], r["phi"]) for r in results}
        results = [r for r in json.loads(table.read_text())
                   if (r["coral"], r["phi"]) not in done] + results
    results.sort(key=lambda r: (r["coral"], r["phi"]))
    table.write_text(json.dumps(results, indent=1))
    lines = ["# Adaptation weights: CORAL and Phi term", "",
             f"Each row: a model trained on {args.n_train} measured simulations ({args.epochs} "
             "epochs at most), adapted to 60 exact-measurement pseudo-experiments; scored on "
             f"them and on {args.eval} held-out simulations.", "",
             "| CORAL | Phi | 90% cov. D | log10 sigma | c | RMSE D | log10 sigma | c "
             "| held-out R2 D | log10 sigma | c | max cov. err. D | log10 sigma | c |",
             "| --- " * 14 + "|"]
    for r in results:
        cells = [f"{r['coral']:g}", f"{r['phi']:g}", *(f"{v:.2f}" for v in r["pseudo_coverage_90"]),
                 f"{r['pseudo_rmse'][0]:.2e}", *(f"{v:.3f}" for v in r["pseudo_rmse"][1:]),
                 *(f"{v:.3f}" for v in r["heldout_r2"]),
                 *(f"{v:.3f}" for v in r["heldout_max_coverage_error"])]
        lines.append("| " + " | ".join(cells) + " |")
    (RESULTS / "adaptation_weights.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
