"""Accuracy and calibration of the posterior estimator (issue: posteriors per scan).

Trains (or reuses) two models on one measured bank: vanilla NPE, and NPE adapted to the
exact-measurement pseudo-experiments (CORAL + Phi term, the default weights of `gbsbi train`);
then evaluates both
- on a held-out measured bank never trained on: R^2 and RMSE of the posterior mean of D,
  log10 sigma and c; expected coverage of central intervals at levels 0.1 ... 0.9; 90 %
  interval width over the prior's width against c and against the noise (where a parameter is
  not identifiable its posterior is as wide as the prior, which is the right answer);
- on exact-measurement pseudo-experiments: the fraction of 90 % intervals covering the truth
  for each parameter, and the RMSE.

Banks and pseudo-experiments are simulated into --work when missing. Results go to
studies/results/npe_accuracy.{md,json} and npe_*.png.

Usage: python studies/npe_accuracy.py [--work DIR] [--n-train 50000] [--n-heldout 5000]
       [--eval 2000] [--epochs 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from gbsbi.bank import BankSpec, simulate_bank  # noqa: E402
from gbsbi.inference.config import TrainConfig  # noqa: E402
from gbsbi.inference.data import bank_inputs, scan_inputs  # noqa: E402
from gbsbi.inference.model import load_model  # noqa: E402
from gbsbi.inference.npe.config import Adaptation, settings  # noqa: E402
from gbsbi.inference.pipeline import train_model  # noqa: E402
from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments  # noqa: E402
from gbsbi.validation.calibration import central_coverage, r2_score, rmse  # noqa: E402
from gbsbi.validation.check import run_check  # noqa: E402
from simulators.config import FRESH, STATIONARY, ExperimentConfig, MeasurementPrior, Prior  # noqa: E402

RESULTS = Path(__file__).parent / "results"
NAMES = ("D", "log10 sigma", "c")
LEVELS = np.round(np.arange(0.1, 0.91, 0.1), 1)


def ensure_bank(path: Path, n: int, seed: int) -> Path:
    if not path.exists():
        spec = BankSpec(ExperimentConfig(), FRESH, n, seed, measurement="fast",
                        sample=STATIONARY, nuisance=MeasurementPrior())
        with tqdm(total=n, desc=f"simulate {path.name}") as bar:
            simulate_bank(path, spec, workers=2, progress=bar.update)
    return path


def ensure_pseudo(path: Path, seed: int) -> Path:
    if not path.exists():
        write_pseudo_experiments(path, PseudoSpec(mode="exact", seed=seed), ExperimentConfig(),
                                 Prior(), MeasurementPrior())
    return path


def ensure_model(out: Path, bank: Path, pseudo: Path | None, epochs: int, cache: Path):
    if not (out / "model.json").exists():
        # `gbsbi train` with --experimental: the default adaptation weights, else plain NPE
        training, estimator = settings(TrainConfig(epochs=epochs), adapted=pseudo is not None,
                                       members=1)
        train_model(bank, out, training, estimator, experimental=pseudo, cache=cache,
                    overwrite=True, resume=False)
    return load_model(out)


def evaluate(model, x: np.ndarray, theta: np.ndarray, ranks: bool = False):  # noqa: ANN001, ANN201
    """1,000 posterior draws per simulation summarised on the prior's scale (a CheckResult);
    with ``ranks`` also the SBC ranks (run_check's diagnostics)."""
    return run_check(model, x, model.spec.prior.to_unit(theta), draws=1000, seed=0, batch=250,
                     diagnostics=ranks)


def heldout_figures(ev, noise: np.ndarray) -> dict:
    coverage = central_coverage(ev.rank / ev.draws, LEVELS)
    return {
        "n": len(ev.truth),
        "r2": dict(zip(NAMES, r2_score(ev.truth, ev.mean).round(4).tolist(), strict=True)),
        "rmse": dict(zip(NAMES, rmse(ev.truth, ev.mean).tolist(), strict=True)),
        "coverage": {f"{level:.1f}": dict(zip(NAMES, row.round(4).tolist(), strict=True))
                     for level, row in zip(LEVELS, coverage, strict=True)},
        "max_coverage_error": dict(zip(
            NAMES, np.abs(coverage - LEVELS[:, None]).max(0).round(4).tolist(), strict=True)),
        "r2_low_noise_half": dict(zip(NAMES, r2_score(
            ev.truth[noise <= np.median(noise)], ev.mean[noise <= np.median(noise)]
        ).round(4).tolist(), strict=True)),
        "r2_by_noise_quintile": _by_quintile(ev, noise),
    }


def _by_quintile(ev, noise: np.ndarray) -> list[dict]:
    """R^2 of the posterior mean in fifths of the held-out maps by noise variance, least first."""
    edges = np.quantile(noise, np.linspace(0, 1, 6))
    rows = []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        pick = (noise >= a) & ((noise < b) if k < 4 else (noise <= b))
        rows.append({"log10_s2": [round(float(a), 2), round(float(b), 2)],
                     "r2": dict(zip(NAMES, r2_score(ev.truth[pick], ev.mean[pick])
                                    .round(3).tolist(), strict=True))})
    return rows


def pseudo_figures(ev) -> dict:
    return {
        "n": len(ev.truth),
        "coverage_90": dict(zip(NAMES, ev.contains.mean(0).round(4).tolist(), strict=True)),
        "rmse": dict(zip(NAMES, rmse(ev.truth, ev.mean).tolist(), strict=True)),
        "mean_width_90": dict(zip(NAMES, ev.width.mean(0).tolist(), strict=True)),
    }


def plot_coverage(results: dict, path: Path, n: int) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), constrained_layout=True)
    band = 2 * np.sqrt(LEVELS * (1 - LEVELS) / n)
    for ax, name in zip(axes, NAMES, strict=True):
        ax.fill_between(LEVELS, LEVELS - band, LEVELS + band, color="0.85",
                        label="binomial 95 % band")
        ax.fill_between(LEVELS, LEVELS - 0.05, LEVELS + 0.05, color="C2", alpha=0.15,
                        label="target +-0.05")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        for k, (variant, figures) in enumerate(results.items()):
            cov = [figures["heldout"]["coverage"][f"{lv:.1f}"][name] for lv in LEVELS]
            ax.plot(LEVELS, cov, "o-", color=f"C{k}", label=variant)
        ax.set_title(name)
        ax.set_xlabel("credible level")
    axes[0].set_ylabel("expected coverage (held-out bank)")
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_width(ev, c: np.ndarray, noise: np.ndarray, prior_width: np.ndarray, path: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), constrained_layout=True)
    relative = ev.width / prior_width
    for j, name in enumerate(NAMES):
        for row, (cov, label) in enumerate(((c, "true c"), (noise, "log10 noise variance s2"))):
            ax = axes[row, j]
            ax.scatter(cov, relative[:, j], s=3, alpha=0.3)
            bins = np.quantile(cov, np.linspace(0, 1, 11))
            mids = 0.5 * (bins[1:] + bins[:-1])
            med = [np.median(relative[(cov >= a) & (cov <= b), j])
                   for a, b in zip(bins[:-1], bins[1:], strict=True)]
            ax.plot(mids, med, "k-", lw=2, label="median")
            ax.set_ylim(0, 1.05)
            ax.set_xlabel(label)
            ax.set_title(f"{name}: 90 % width / prior width")
    axes[0, 0].legend()
    fig.suptitle("posterior width over the prior's (1 = the map tells nothing)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pred(ev, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    for j, (ax, name) in enumerate(zip(axes, NAMES, strict=True)):
        pick = np.arange(min(400, len(ev.truth)))
        # Lines and points, not error bars: a mean can lie outside its own 90 % interval.
        ax.vlines(ev.truth[pick, j], ev.low[pick, j], ev.high[pick, j], lw=0.5, alpha=0.3)
        ax.plot(ev.truth[pick, j], ev.mean[pick, j], "o", ms=2, alpha=0.3)
        lo, hi = ev.truth[:, j].min(), ev.truth[:, j].max()
        ax.plot([lo, hi], [lo, hi], "k--")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel("posterior mean, 90 % interval")
        ax.set_title(f"R$^2$ = {r2_score(ev.truth[:, j], ev.mean[:, j])[0]:.3f}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict, args: argparse.Namespace) -> str:
    lines = ["# Posterior estimator: accuracy and calibration", "",
             f"Trained on {args.n_train} maps simulated as measured (fast noise model), "
             f"evaluated on {args.eval} held-out measured maps (1,000 draws each) and on 60 "
             "exact-measurement pseudo-experiments (3 groups x 4 temperatures x 5 repeats, "
             "0.05 photons per pixel per frame, 20,000 pixels). Adapted: CORAL weight "
             f"{Adaptation().coral_weight}, Phi weight {Adaptation().phi_weight}, against the "
             "pseudo-experiments. "
             "Epochs run (early stopping after 15 without a better validation NLL): "
             + ", ".join(f"{v} {f['history_epochs']}" for v, f in results.items()) + ".", "",
             "## Held-out bank", "",
             "| model | R2 D | R2 log10 sigma | R2 c | max coverage error D | sigma | c |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for variant, f in results.items():
        h = f["heldout"]
        lines.append(f"| {variant} | " + " | ".join(f"{h['r2'][n]:.3f}" for n in NAMES) + " | "
                     + " | ".join(f"{h['max_coverage_error'][n]:.3f}" for n in NAMES) + " |")
    lines += ["", "Target: R2 >= 0.9 for each, coverage within +-0.05 of nominal at 0.1 ... 0.9.",
              "", "R2 by the map's noise variance s2 (fifths of the held-out maps, least noisy "
              "first): the information in a map, not the network, sets the ceiling; "
              "`npe_width.png` shows the posteriors widening to the prior as s2 grows.", "",
              "| model | log10 s2 | R2 D | R2 log10 sigma | R2 c |",
              "| --- | --- | --- | --- | --- |"]
    for variant, f in results.items():
        for row in f["heldout"]["r2_by_noise_quintile"]:
            lo, hi = row["log10_s2"]
            lines.append(f"| {variant} | {lo:.2f} to {hi:.2f} | "
                         + " | ".join(f"{row['r2'][n]:.3f}" for n in NAMES) + " |")
    lines += ["", "## Pseudo-experiments (exact measurement)", "",
              "| model | 90 % coverage D | log10 sigma | c | RMSE D [nm^2/s] | log10 sigma | c |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for variant, f in results.items():
        p = f["pseudo"]
        lines.append(f"| {variant} | " + " | ".join(f"{p['coverage_90'][n]:.2f}" for n in NAMES)
                     + " | " + " | ".join(f"{p['rmse'][n]:.3g}" for n in NAMES) + " |")
    lines += ["", "Target: at least 0.85 for each parameter.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("npe-study"))
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--n-heldout", type=int, default=5_000)
    parser.add_argument("--eval", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bank = ensure_bank(args.work / "train.h5", args.n_train, seed=11)
    heldout = ensure_bank(args.work / "heldout.h5", args.n_heldout, seed=12)
    pseudo = ensure_pseudo(args.work / "pseudo_exact.h5", seed=13)
    cache = args.work / "cache"
    models = {"vanilla NPE": ensure_model(args.work / "vanilla", bank, None, args.epochs, cache),
              "adapted NPE": ensure_model(args.work / "adapted", bank, pseudo, args.epochs,
                                          cache)}
    spec = next(iter(models.values())).spec
    held = bank_inputs(heldout, spec.inputs, cache=cache)
    x, theta = held.x[: args.eval], held.theta[: args.eval]
    noise = x[:, -2]  # log10 s2 (inputs.SCALARS)
    scans = scan_inputs(pseudo, spec.experiment, spec.inputs)
    results, evaluations = {}, {}
    for variant, model in models.items():
        ev = evaluate(model, x, theta, ranks=True)
        evaluations[variant] = ev
        results[variant] = {"heldout": heldout_figures(ev, noise),
                            "pseudo": pseudo_figures(evaluate(model, scans.x,
                                                              scans.maps.theta)),
                            "history_epochs": len(json.loads(
                                (model.directory / "history.json").read_text()))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "npe_accuracy.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "npe_accuracy.md").write_text(markdown(results, args))
    plot_coverage(results, RESULTS / "npe_coverage.png", len(x))
    low, high = spec.prior.scale_bounds()
    prior_width = high - low
    plot_width(evaluations["vanilla NPE"], theta[:, 2], noise, prior_width,
               RESULTS / "npe_width.png")
    plot_pred(evaluations["vanilla NPE"], RESULTS / "npe_pred_vs_true.png")
    print(markdown(results, args))


if __name__ == "__main__":
    main()
