"""Benchmark: what the per-scan misspecification tests add to `gbsbi infer`, per scan.

On the scans of a maps file, in one run: the posterior draws of `gbsbi infer` (default 4,000
per scan, :func:`gbsbi.inference.infer.draw_posteriors`, with its look at each scan's mass
inside the prior) and then the tests (:func:`gbsbi.inference.infer.with_misspecification`:
the embedding's density, the principal subspace residual and the predictive discrepancies of
the map, of Phi and of the trend along the window at 40 posterior draws). Prints seconds per
scan of each and the line ``tests/draws time: R``. The target of issue 14: at most 1 s per
scan on top of `gbsbi infer`.

Usage: python studies/bench_misspec.py --model MODEL_DIR --maps MAPS.h5 [--draws 4000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gbsbi.inference.data import scan_inputs
from gbsbi.inference.infer import draw_posteriors, with_misspecification
from gbsbi.inference.model import load_model
from gbsbi.inference.npe.predict import GbPosterior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--maps", type=Path, required=True)
    parser.add_argument("--draws", type=int, default=4000)
    args = parser.parse_args()
    model = load_model(args.model)
    scans = scan_inputs(args.maps, model.spec.experiment, model.spec.inputs)
    n = len(scans.x)
    began = time.perf_counter()
    drawn = draw_posteriors(GbPosterior(model), scans, args.draws, seed=0, show_progress=False)
    draws = time.perf_counter() - began
    began = time.perf_counter()
    tested = with_misspecification(model, scans, drawn, 0)
    tests = time.perf_counter() - began
    if tested.misspecification is None:
        raise SystemExit(f"{args.model} has no misspecification reference")
    print(f"{n} scans: posterior draws {draws / n:.3f} s per scan, misspecification tests "
          f"{tests / n:.3f} s per scan ({(tested.misspecification < tested.alpha).sum()} "
          f"flagged)")
    print(f"tests/draws time: {tests / draws:.2f}")


if __name__ == "__main__":
    main()
