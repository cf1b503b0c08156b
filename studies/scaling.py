"""How sharp can one map's posterior be? Accuracy and calibration against bank and network size.

Each point trains the posterior estimator with `gbsbi train`'s defaults (noise augmentation,
docs/inference.md#robustness) on a bank simulated as `gbsbi simulate --measurement fast` with
the default physics, and scores it on one held-out bank of the same physics:

- validation NLL: the mean of -log q(u | x) at the true u of the held-out maps (nats, unit
  cube), the figure the training minimises;
- R^2 of the posterior mean of D, log10 sigma and c, overall and by fifths of the maps' noise
  variance s2;
- expected coverage of central intervals at 0.1 ... 0.9 and its largest error.

Points: bank sizes (``--sizes``) with the default network; at ``--network-size`` a wider and a
deeper network (embedding and flow); at ``--seed-size`` two more seeds for the spread, and the
ensemble of those three flows (an equal mixture: draws pooled, densities averaged); at the
largest size a second seed and the ensemble of the two (``ensemble-largest``). NLL(N) is
fitted with a saturating power law a + b N^-alpha (scipy's curve_fit) and the bank size where a
doubling gains less than 0.01 nats is reported.

Every point is a line of ``--work``/records.jsonl, written as soon as it is scored, so an
interrupted run resumes where it stopped and two processes (``--points`` a subset, each on
its own core with taskset) can share the work. ``--summarise`` writes
studies/results/scaling.{md,json,png} from the records.

Usage: python studies/scaling.py --work DIR [--sizes 10000,20000,50000,100000,200000]
       [--network-size 20000] [--seed-size 20000] [--points NAME,...] [--summarise]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from gbsbi.bank import BankSpec, simulate_bank
from gbsbi.inference.config import Architecture, EmbeddingConfig, FlowConfig, TrainConfig
from gbsbi.inference.data import bank_inputs
from gbsbi.inference.model import load_model
from gbsbi.inference.npe.config import settings
from gbsbi.inference.npe.predict import draws_with_density
from gbsbi.inference.pipeline import train_model
from gbsbi.validation.calibration import central_coverage, r2_score
from simulators.config import FRESH, STATIONARY, ExperimentConfig, Prior

RESULTS = Path(__file__).parent / "results"
NAMES = ("D", "log10 sigma", "c")
LEVELS = np.round(np.arange(0.1, 0.91, 0.1), 1)
#: The networks compared: (embedding, flow).
NETWORKS = {
    "default": (EmbeddingConfig(), FlowConfig()),
    "wide": (EmbeddingConfig(channels=(32, 64, 128), hidden=256, features=64),
             FlowConfig(hidden=128)),
    "deep": (EmbeddingConfig(channels=(16, 32, 64, 64)), FlowConfig(transforms=8)),
}
#: A doubling of the bank that gains less than this (nats of validation NLL) is flat.
FLAT = 0.01


def points(sizes: list[int], network_size: int, seed_size: int) -> dict[str, dict]:
    """Every training run of the study, by name."""
    out = {f"n{n}": {"n": n, "network": "default", "seed": 0} for n in sizes}
    for name in ("wide", "deep"):
        out[f"n{network_size}-{name}"] = {"n": network_size, "network": name, "seed": 0}
    for seed in (1, 2):
        out[f"n{seed_size}-seed{seed}"] = {"n": seed_size, "network": "default", "seed": seed}
    out[f"n{max(sizes)}-seed1"] = {"n": max(sizes), "network": "default", "seed": 1}
    return out


def ensembles(sizes: list[int], seed_size: int) -> dict[str, list[str]]:
    """The ensembles of the study, by point name: their members."""
    return {"ensemble": [f"n{seed_size}"] + [f"n{seed_size}-seed{s}" for s in (1, 2)],
            "ensemble-largest": [f"n{max(sizes)}", f"n{max(sizes)}-seed1"]}


def bank(work: Path, n: int, seed: int) -> Path:
    """The bank of n maps (seed 0 for training, 1 for the held-out bank), simulated once; an
    interrupted simulation goes on from its journal."""
    path = work / f"bank-{n}-{seed}.h5"
    if not path.exists():
        start = time.perf_counter()
        journal = path.with_name(path.name + ".parts")
        simulate_bank(path, BankSpec(ExperimentConfig(), FRESH, n, seed, measurement="fast",
                                     sample=STATIONARY),
                      workers=1, resume=journal.exists())
        print(f"bank of {n}: {time.perf_counter() - start:.0f} s", flush=True)
    return path


def train(work: Path, name: str, point: dict, epochs: int) -> tuple[Path, dict]:
    """The point's model directory, trained unless it is there, and its training figures."""
    out = work / "models" / name
    embedding, flow = NETWORKS[point["network"]]
    if not (out / "model.json").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        training, estimator = settings(TrainConfig(epochs=epochs, seed=point["seed"]), False,
                                       members=1)
        start = time.perf_counter()
        train_model(bank(work, point["n"], 0), out, training, replace(estimator, flow=flow),
                    architecture=Architecture(embedding=embedding), cache=work / "cache",
                    overwrite=True, show_progress=False, threads=1)
        (out / "seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    history = json.loads((out / "history.json").read_text())
    seconds = float((out / "seconds.txt").read_text()) if (out / "seconds.txt").exists() else None
    return out, {"epochs": len(history), "seconds": seconds}


def score(draws: np.ndarray, log_q_truth: np.ndarray, u: np.ndarray, noise: np.ndarray,
          prior: Prior) -> dict:
    """The figures of one estimator from its draws (draws, n, 3) in the unit cube, log q at
    the truth (n,), the true u (n, 3) and each map's log10 s2 (n,)."""
    scaled, truth = prior.to_scale(prior.from_unit(draws)), prior.to_scale(prior.from_unit(u))
    mean = scaled.mean(axis=0)
    coverage = central_coverage((draws < u).mean(axis=0), LEVELS)
    edges = np.quantile(noise, np.linspace(0, 1, 6))
    fifths = []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        pick = (noise >= a) & ((noise < b) if k < 4 else (noise <= b))
        fifths.append({"log10_s2": [round(float(a), 2), round(float(b), 2)],
                       "r2": r2_score(truth[pick], mean[pick]).round(4).tolist()})
    return {"nll": float(-log_q_truth.mean()),
            "r2": r2_score(truth, mean).round(4).tolist(),
            "r2_by_noise_fifth": fifths,
            "coverage": coverage.round(4).tolist(),
            "max_coverage_error": np.abs(coverage - LEVELS[:, None]).max(0).round(4).tolist()}


def heldout(work: Path, n: int, spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """The held-out inputs x, true u and log10 s2."""
    held = bank_inputs(bank(work, n, 1), spec.inputs, cache=work / "cache")
    return held.x, spec.prior.to_unit(held.theta), held.x[:, -2]  # log10 s2 (inputs.SCALARS)


def run_point(work: Path, name: str, point: dict, args: argparse.Namespace) -> dict:
    model_dir, trained = train(work, name, point, args.epochs)
    model = load_model(model_dir)
    x, u, noise = heldout(work, args.heldout, model.spec)
    start = time.perf_counter()
    drawn = draws_with_density(model, x, u, args.draws, seed=0)
    np.savez_compressed(work / "models" / name / "heldout_draws.npz", u=drawn["u"].astype(
        np.float32), log_q_truth=drawn["log_q_truth"])
    record = {"name": name, **point, **trained,
              "maps_per_s": (0.9 * point["n"] * trained["epochs"] / trained["seconds"]
                             if trained["seconds"] else None),
              **score(drawn["u"], drawn["log_q_truth"], u, noise, model.spec.prior),
              "score_seconds": time.perf_counter() - start}
    return record


def ensemble(work: Path, names: list[str], n: int, args: argparse.Namespace) -> dict:
    """The equal mixture of the flows ``names`` (trained on n maps): each member's held-out
    draws pooled (the same number from each), log q the log of the mean density."""
    model = load_model(work / "models" / names[0])
    x, u, noise = heldout(work, args.heldout, model.spec)
    stored = [np.load(work / "models" / member / "heldout_draws.npz") for member in names]
    per = args.draws // len(names)
    draws = np.concatenate([s["u"][:per].astype(np.float64) for s in stored])
    logs = np.stack([s["log_q_truth"] for s in stored])
    log_mix = np.logaddexp.reduce(logs, axis=0) - np.log(len(names))
    return {"name": f"ensemble of {len(names)} at {n}", "n": n, "members": names,
            **score(draws, log_mix, u, noise, model.spec.prior)}


def read(work: Path) -> dict[str, dict]:
    path = work / "records.jsonl"
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["name"]: r for r in records}


def power_law(sizes: np.ndarray, nll: np.ndarray) -> dict:
    """NLL(N) = a + b N^-alpha fitted to the default network's points; the bank size where a
    doubling gains less than FLAT nats."""
    from scipy.optimize import curve_fit

    def law(n, a, b, alpha):  # noqa: ANN001, ANN202
        return a + b * (n / 1e4) ** -alpha

    if len(sizes) < 4:
        return {"fitted": False, "why": f"{len(sizes)} bank sizes; the law has 3 parameters"}
    (a, b, alpha), cov = curve_fit(law, sizes, nll, p0=(nll.min() - 0.1, 0.1, 0.5),
                                   bounds=([-10, 0, 0.01], [10, 10, 3]), maxfev=20000)
    gain = b * (1 - 2.0 ** -alpha)  # gain of a doubling at N = 1e4, times (N / 1e4)^-alpha
    flat = 1e4 * (gain / FLAT) ** (1 / alpha) if gain > FLAT else 1e4
    return {"fitted": True, "a": a, "b": b, "alpha": alpha,
            "sd": np.sqrt(np.diag(cov)).tolist(), "flat_from": flat}


def summarise(work: Path, results: Path, network_size: int, seed_size: int) -> None:
    from gbsbi.plots import pyplot

    records = read(work)
    by_size = sorted((r for r in records.values() if r.get("network") == "default"
                      and r.get("seed") == 0), key=lambda r: r["n"])
    n = np.array([r["n"] for r in by_size], dtype=float)
    nll = np.array([r["nll"] for r in by_size])
    fit = power_law(n, nll) if len(n) else {"fitted": False}
    seeds = [r for r in records.values() if r.get("n") == seed_size
             and r.get("network") == "default"]
    spread = {"nll_sd": float(np.std([r["nll"] for r in seeds], ddof=1)) if len(seeds) > 1
              else None,
              "r2_sd": np.std([r["r2"] for r in seeds], axis=0, ddof=1).round(4).tolist()
              if len(seeds) > 1 else None, "seeds": len(seeds)}
    results.mkdir(parents=True, exist_ok=True)
    (results / "scaling.json").write_text(json.dumps(
        {"records": records, "power_law": fit, "seed_spread": spread}, indent=1))
    rows = ["| point | maps | network | seed | epochs | train s | maps/s | NLL | R2 D / log10 "
            "sigma / c | max coverage error |", "| --- | --- | --- | --- | --- | --- | --- | "
            "--- | --- | --- |"]
    for r in sorted(records.values(), key=lambda r: (r.get("n", 1e9), r["name"])):
        trained = (f"{r['seconds']:.0f} | {r['maps_per_s']:.0f}" if r.get("seconds")
                   else "- | -")
        rows.append(f"| {r['name']} | {r.get('n', '-')} | {r.get('network', '-')} | "
                    f"{r.get('seed', '-')} | {r.get('epochs', '-')} | {trained} | "
                    f"{r['nll']:.3f} | {' / '.join(f'{v:.3f}' for v in r['r2'])} | "
                    f"{' / '.join(f'{v:.3f}' for v in r['max_coverage_error'])} |")
    fifths = ["| point | log10 s2 | R2 D / log10 sigma / c |", "| --- | --- | --- |"]
    for r in by_size[-1:] + [r for r in records.values() if r["name"].startswith("ensemble")]:
        for f in r["r2_by_noise_fifth"]:
            fifths.append(f"| {r['name']} | {f['log10_s2'][0]} to {f['log10_s2'][1]} | "
                          f"{' / '.join(f'{v:.3f}' for v in f['r2'])} |")
    (results / "scaling_table.md").write_text("\n".join(rows) + "\n\n" + "\n".join(fifths)
                                              + "\n")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    if len(n):
        axes[0].plot(n, nll, "o", color="C0", label="default network, seed 0")
        if fit.get("fitted"):
            grid = np.geomspace(n.min(), max(n.max(), 2e5), 100)
            axes[0].plot(grid, fit["a"] + fit["b"] * (grid / 1e4) ** -fit["alpha"], "-",
                         color="C0", lw=1, label=f"a + b N^-{fit['alpha']:.2f}")
        for k, (name, marker) in enumerate((("wide", "s"), ("deep", "^"))):
            r = records.get(f"n{network_size}-{name}")
            if r:
                axes[0].plot(r["n"], r["nll"], marker, color=f"C{k + 1}", label=name)
        for r in seeds:
            axes[0].plot(r["n"], r["nll"], ".", color="0.4")
        axes[0].set_xscale("log")
        axes[0].set_xlabel("bank size N (measured maps)")
        axes[0].set_ylabel("held-out NLL (nats)")
        axes[0].legend(fontsize=8)
        for k, name in enumerate(NAMES):
            axes[1].plot(n, [r["r2"][k] for r in by_size], "o-", label=name)
        axes[1].set_xscale("log")
        axes[1].set_xlabel("bank size N (measured maps)")
        axes[1].set_ylabel("held-out R^2 of the posterior mean")
        axes[1].legend(fontsize=8)
    fig.savefig(results / "scaling.png", dpi=110)
    plt.close(fig)
    print((results / "scaling_table.md").read_text())
    print(json.dumps({"power_law": fit, "seed_spread": spread}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sizes", default="10000,20000,50000,100000,200000")
    parser.add_argument("--network-size", type=int, default=20_000)
    parser.add_argument("--seed-size", type=int, default=20_000)
    parser.add_argument("--heldout", type=int, default=2000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--points", default=None,
                        help="names of the points to run (default all; see --list)")
    parser.add_argument("--list", action="store_true", help="print the points and stop")
    parser.add_argument("--summarise", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    plan = points(sizes, args.network_size, args.seed_size)
    if args.list:
        print("\n".join(f"{k}: {v}" for k, v in plan.items()))
        return
    if args.summarise:
        summarise(args.work, args.results, args.network_size, args.seed_size)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)  # one core per process (run two with taskset, one per core)
    bank(args.work, args.heldout, 1)  # before any training: two processes share it
    mixtures = {name: members for name, members in ensembles(sizes, args.seed_size).items()
                if all(m in plan for m in members)}
    wanted = args.points.split(",") if args.points else list(plan) + list(mixtures)
    for name in wanted:
        # records of before the ensembles had points: "ensemble of 3" is the point "ensemble"
        done = {r.get("point", "ensemble" if r["name"] == "ensemble of 3" else r["name"])
                for r in read(args.work).values()}
        if name in done or name not in plan and name not in mixtures:
            continue
        if name in mixtures:
            record = {"point": name, **ensemble(args.work, mixtures[name],
                                                      plan[mixtures[name][0]]["n"], args)}
        else:
            record = run_point(args.work, name, plan[name], args)
        with open(args.work / "records.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{name}: NLL {record['nll']:.3f}, R2 {record['r2']}", flush=True)


if __name__ == "__main__":
    main()
