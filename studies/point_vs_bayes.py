"""Point estimators against posteriors, in the model and beyond it (issue: trust the posteriors).

Four estimators: the paper's regressor plain and adapted (`gbsbi train --estimator point`)
and NPE plain and adapted (`gbsbi train`, adapted with --experimental on the pooled unlabelled
pseudo-experiments below), trained and run through the library's functions
(:func:`gbsbi.inference.pipeline.train_model`, :func:`gbsbi.inference.infer.run_infer`).
Each is scored on

* held-out simulations (a bank never trained on);
* pseudo-experiments with known theta: ``in-model`` (exact photon-counting measurement),
  ``boundaries`` (three boundaries of lengths 60, 100 and 150 nm in each map, their phase
  fields joined: the model has one of 100 nm), ``drift`` (the beam intensity decays linearly to
  40 % over the window; fast noise model with per-frame counts), ``dropped`` (10 % of the
  frames dropped, exact measurement), ``grid`` (200 frames over the window, binned to the
  model's 128 by `gbsbi infer`'s reader);

by RMSE and R^2 of the posterior mean (point estimate) of D, log10 sigma and c, and for
posteriors the 90 % coverage and the mean 90 % interval width over the prior's width.
Results: studies/results/point_vs_bayes.{md,json,png}.

Usage: python studies/point_vs_bayes.py --work DIR [--npe MODEL_DIR] [--adapted-npe DIR]
       [--point DIR] [--adapted-point DIR] [--bank BANK.h5] [--heldout BANK.h5] [--train]
       [--epochs 200] [--groups 10] [--n-heldout 1000]
Models not given are trained with --train (on --bank), else left out of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gbsbi.inference.config import TrainConfig  # noqa: E402
from gbsbi.inference.infer import run_infer  # noqa: E402
from gbsbi.inference.npe.config import settings as npe_settings  # noqa: E402
from gbsbi.inference.pipeline import train_model  # noqa: E402
from gbsbi.inference.point.config import settings as point_settings  # noqa: E402
from gbsbi.io.mapsfile import Maps, write_maps  # noqa: E402
from gbsbi.validation.calibration import r2_score, rmse  # noqa: E402
from simulators.config import FRESH, ExperimentConfig, MeasurementPrior  # noqa: E402
from simulators.gb import boundary_phase, parts_from_phase, phase_field  # noqa: E402
from simulators.measurement import MeasurementConfig, measure_factors  # noqa: E402
from simulators.noise import noisy_maps  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SETS = ("in-model", "boundaries", "drift", "dropped", "grid")
PARAMS = ("D", "log10 sigma", "c")
COUNTS, N_PIX, BETA = 0.05, 20_000, 0.2


def train(bank: Path, out: Path, epochs: int, cache: Path, point: bool,
          experimental: Path | None) -> None:
    """`gbsbi train BANK --out OUT --epochs E --cache DIR --overwrite [--estimator point]
    [--experimental MAPS] [--members 1]`: the default settings (one member), adapted with the
    default weights where experimental maps are given."""
    if point:
        training, estimator = point_settings(TrainConfig(epochs=epochs), experimental is not None)
    else:  # one member: the study's results predate ensembles (docs/inference.md#ensemble)
        training, estimator = npe_settings(TrainConfig(epochs=epochs), experimental is not None,
                                           members=1)
    train_model(bank, out, training, estimator, experimental=experimental, cache=cache,
                overwrite=True)


def infer(model: Path, maps: Path, out: Path, draws: int, seed: int) -> None:
    """`gbsbi infer MODEL MAPS --out OUT --draws N --no-plots --seed S`."""
    def warn(line: str) -> None:
        print(f"gbsbi infer: warning: {line}", file=sys.stderr)

    run_infer(model, maps, out, draws=draws, seed=seed, plots=False, warn=warn)


def _measure_exact(config, theta, u, setting, rng):  # noqa: ANN001, ANN202
    gamma = theta[0] * config.q**2
    return measure_factors(config.t, gamma, theta[2], u, setting, rng).C


def simulate_set(kind: str, groups: int, seed: int) -> Maps:
    """One set of pseudo-experiments (module docstring): each group one theta from the
    prior, at 350 and 450 K."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, SETS.index(kind)]))
    prior, base = FRESH, ExperimentConfig()
    config = replace(base, n_frames=200) if kind == "grid" else base
    thetas, _ = prior.sample(groups, rng)
    rows, maps = [], []
    setting = MeasurementConfig(nbar=COUNTS, n_pix=N_PIX, beta=BETA,
                                drop_fraction=0.1 if kind == "dropped" else 0.0)
    for g in range(groups):
        for temperature in (350.0, 450.0):
            theta = thetas[g]
            if kind == "boundaries":
                phases = [boundary_phase(theta[None, 1], np.array([temperature]),
                                         replace(config, L=L), rng) for L in (60.0, 100.0, 150.0)]
                u = phase_field(np.concatenate(phases, axis=-1))[0]
                C = _measure_exact(config, theta, u, setting, rng)
            elif kind == "drift":
                phase = boundary_phase(theta[None, 1], np.array([temperature]), config, rng)
                real, imag = parts_from_phase(theta[None], phase, config)
                clean = 1 + np.float32(BETA) * (real**2 + imag**2)
                counts = COUNTS * np.linspace(1.0, 0.4, config.n_frames)[None]
                C = noisy_maps(clean, counts, N_PIX, BETA, rng)[0]
            else:
                phase = boundary_phase(theta[None, 1], np.array([temperature]), config, rng)
                C = _measure_exact(config, theta, phase_field(phase)[0], setting, rng)
            maps.append(np.asarray(C, dtype=np.float32))
            rows.append((g, temperature))
    n = len(rows)
    return Maps(np.stack(maps), config.t, np.array([t for _, t in rows]), np.full(n, config.q),
                scan=np.array([f"{kind}-g{g + 1}-T{t:g}" for g, t in rows]),
                group=np.array([f"group-{g + 1}" for g, _ in rows]),
                theta=thetas[[g for g, _ in rows]])


def write_set(path: Path, maps: Maps, kind: str) -> Path:
    config = replace(ExperimentConfig(), n_frames=maps.C.shape[-1])
    text = json.dumps({"experiment": config.to_dict(), "prior": FRESH.to_dict(),
                       "measurement": MeasurementPrior().to_dict(), "study": kind})
    write_maps(path, maps, attrs={"kind": "pseudo-experiments", "config": text})
    return path


def score_posteriors(nc: Path, truth: np.ndarray) -> dict:
    """RMSE, R^2 of the mean; 90 % coverage and width over the prior's width, on the prior's
    scale (D, log10 sigma, c)."""
    from gbsbi.io.posteriors import draws_from_data, read_posterior

    prior = FRESH
    draws = draws_from_data(read_posterior(nc))
    flat = prior.to_scale(draws.theta.reshape(-1, *draws.theta.shape[2:]))
    mean, t = flat.mean(0), prior.to_scale(truth)
    low, high = np.quantile(flat, [0.05, 0.95], axis=0)
    scale_low, scale_high = prior.scale_bounds()
    span = scale_high - scale_low
    out = {"rmse": rmse(t, mean).tolist(), "r2": r2_score(t, mean).tolist()}
    width = ((high - low) / span).mean(0)
    if np.all(width > 0):  # a point estimator writes identical draws: no interval
        out["coverage_90"] = ((t >= low) & (t <= high)).mean(0).tolist()
        out["width_90"] = width.tolist()
    return out


def score_points(csv: Path, truth: np.ndarray) -> dict:
    """RMSE and R^2 of a point model's estimates (the CSV `gbsbi infer` writes for it)."""
    import csv as csvlib

    with csv.open() as f:
        rows = list(csvlib.DictReader(f))
    prior = FRESH
    estimate = prior.to_scale(np.array([[float(r["D"]), float(r["sigma"]), float(r["c"])]
                                        for r in rows]))
    t = prior.to_scale(truth)
    return {"rmse": rmse(t, estimate).tolist(), "r2": r2_score(t, estimate).tolist()}


def heldout_maps(bank: Path, n: int, path: Path) -> Path:
    """The first n maps of a held-out bank as a maps file with theta."""
    import h5py

    with h5py.File(bank, "r") as f:
        maps = Maps(f["C"][:n], f["t"][()], f["temperature"][:n], f["q"][:n],
                    theta=f["theta"][:n])
        config = f.attrs["config"]
    write_maps(path, maps, attrs={"kind": "pseudo-experiments", "config": config})
    return path


def table(results: dict) -> str:
    lines = ["| estimator | data | " + " | ".join(
        f"{m} {p}" for m in ("RMSE", "R2", "cov90", "width90") for p in PARAMS) + " |",
        "|" + " --- |" * (2 + 4 * len(PARAMS))]
    for est, per in results.items():
        for data, s in per.items():
            cells = []
            for m in ("rmse", "r2", "coverage_90", "width_90"):
                cells += [f"{v:.3g}" for v in s[m]] if m in s else ["-"] * len(PARAMS)
            lines.append(f"| {est} | {data} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), constrained_layout=True)
    datasets = list(dict.fromkeys(d for per in results.values() for d in per))
    x = np.arange(len(datasets))
    for j, est in enumerate(results):
        for k in range(3):
            r2 = [results[est].get(d, {}).get("r2", [np.nan] * 3)[k] for d in datasets]
            cov = [results[est].get(d, {}).get("coverage_90", [np.nan] * 3)[k]
                   for d in datasets]
            axes[0, k].bar(x + 0.2 * j, np.clip(r2, -1, 1), 0.2, label=est)
            axes[1, k].bar(x + 0.2 * j, cov, 0.2, label=est)
            axes[0, k].set_title(f"R$^2$ of {PARAMS[k]} (clipped at -1)", fontsize=10)
            axes[1, k].set_title(f"90 % coverage of {PARAMS[k]}", fontsize=10)
            axes[1, k].axhline(0.9, color="0.3", ls="--", lw=1)
    for ax in axes.flat:
        ax.set_xticks(x + 0.1 * (len(results) - 1), datasets, rotation=30, fontsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--npe", type=Path)
    ap.add_argument("--adapted-npe", type=Path)
    ap.add_argument("--point", type=Path)
    ap.add_argument("--adapted-point", type=Path)
    ap.add_argument("--bank", type=Path, default=Path("/work/data/train50k.h5"))
    ap.add_argument("--heldout", type=Path, default=Path("/work/data/heldout5k.h5"))
    ap.add_argument("--train", action="store_true", help="train the models not given")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--n-heldout", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    files = {"held-out": heldout_maps(args.heldout, args.n_heldout, work / "heldout.h5")
             if not (work / "heldout.h5").exists() else work / "heldout.h5"}
    for kind in SETS:
        path = work / f"set-{kind}.h5"
        if not path.exists():
            write_set(path, simulate_set(kind, args.groups, args.seed), kind)
        files[kind] = path
    pooled = work / "pooled.h5"
    if not pooled.exists():
        from gbsbi.io.mapsfile import read_maps
        from gbsbi.io.resample import resample

        parts = [read_maps(files[k]) for k in SETS]
        C = np.concatenate([p.C if p.C.shape[-1] == 128 else
                            resample(p.C.astype(np.float64), 128)[0].astype(np.float32)
                            for p in parts])
        write_maps(pooled, Maps(C, ExperimentConfig().t, np.concatenate(
            [p.temperature for p in parts]), np.concatenate([p.q for p in parts])))
    models = {"NPE": args.npe, "adapted NPE": args.adapted_npe, "regressor": args.point,
              "adapted regressor": args.adapted_point}
    for name, path in list(models.items()):
        if path is not None or not args.train:
            continue
        out = work / name.replace(" ", "_")
        if not (out / "model.json").exists():
            train(args.bank, out, args.epochs, work / "cache", point="regressor" in name,
                  experimental=pooled if "adapted" in name else None)
        models[name] = out
    results = {}
    for name, model in models.items():
        if model is None:
            continue
        results[name] = {}
        for data, path in files.items():
            nc = work / f"post-{name.replace(' ', '_')}-{data}.nc"
            # A point model writes its estimates as a CSV (and a JSON) beside --out, no .nc.
            done = nc.with_suffix(".csv" if "regressor" in name else ".nc")
            if not done.exists():
                infer(model, path, nc, args.draws, args.seed)
            from gbsbi.io.mapsfile import read_maps

            truth = read_maps(path).theta
            results[name][data] = (score_points(done, truth) if "regressor" in name
                                   else score_posteriors(nc, truth))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "point_vs_bayes.json").write_text(json.dumps(
        {"results": results, "models": {k: str(v) for k, v in models.items()},
         "point_estimator_available": True, "groups": args.groups,
         "n_heldout": args.n_heldout, "draws": args.draws}, indent=1))
    (RESULTS / "point_vs_bayes_table.md").write_text(table(results) + "\n")
    figure(results, RESULTS / "point_vs_bayes.png")
    print(table(results))


if __name__ == "__main__":
    main()
