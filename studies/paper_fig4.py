"""The paper's Fig. 4 on the demo's pseudo-experiments, with gbsbi's point estimator.

Trains (or reuses) two point models with `gbsbi train`'s own function and defaults
(studies/point_settings.py chose them): the vanilla regressor, and the regressor adapted to
the 60 exact-measurement pseudo-experiments (CORAL + Phi, Eq. 15) with one fine-tuned head
per group. The adapted model's first stage is the vanilla model retrained with the same seed;
the script checks that its history is the vanilla model's. Then

- (a) predicted against true D and log10 sigma of the vanilla regressor on held-out
  simulations (R^2), and where its estimates for the pseudo-experiments fall on the
  (D, sigma) map of mean noiseless Phi of the held-out bank;
- (b) UMAP of the feature vectors of 1,000 held-out simulations and the pseudo-experiments,
  before adaptation (vanilla) and after;
- (c) the same as (a) after adaptation, with the fine-tuned estimates beside the adapted ones.

A control the paper did not have: each pseudo-experiment is simulated again with the training
bank's fast noise model at its own parameters, temperature and measurement constants
("matched simulations"). Maps of one group share their parameters, so they cluster in
feature space with or without a domain gap; the matched simulations show how much of an
experimental island is the gap (exact against fast noise model) and how much the parameters.
Their RMSE is the estimator's on the same parameters without the gap.

Reported: R^2 on the held-out simulations before and after adaptation, and the RMSE of
(D, log10 sigma, c) on the pseudo-experiments before adaptation, after, and after per-group
fine-tuning. Files are simulated into --work when missing. Results: studies/results/
paper_fig4.{md,json} and paper_fig4{a,b,c}.png.

Usage: nice python studies/paper_fig4.py [--work DIR] [--n-train 50000] [--epochs 30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import binned_statistic_2d  # noqa: E402

from gbsbi.bank import BankSpec, simulate_bank  # noqa: E402
from gbsbi.inference.config import TrainConfig  # noqa: E402
from gbsbi.inference.data import bank_inputs, scan_inputs  # noqa: E402
from gbsbi.inference.inputs import network_inputs  # noqa: E402
from gbsbi.inference.model import load_model  # noqa: E402
from gbsbi.inference.pipeline import train_model  # noqa: E402
from gbsbi.inference.point.config import Adaptation, FineTuneConfig, PointConfig  # noqa: E402
from gbsbi.inference.point.network import predict  # noqa: E402
from gbsbi.inference.point.predict import point_estimates  # noqa: E402
from gbsbi.plots.features import draw_domains  # noqa: E402
from gbsbi.pseudo import PseudoSpec, write_pseudo_experiments  # noqa: E402
from gbsbi.validation.calibration import r2_score, rmse  # noqa: E402
from gbsbi.validation.features import own_label_share, umap_coordinates  # noqa: E402
from simulators.config import FRESH, STATIONARY, ExperimentConfig, MeasurementPrior  # noqa: E402
from simulators.measured import measured_maps  # noqa: E402

RESULTS = Path(__file__).parent / "results"
NAMES = ("D", "log10 sigma", "c")
N_UMAP = 1000


def ensure_data(work: Path, n_train: int) -> dict[str, Path]:
    paths = {"train": work / "train.h5", "heldout": work / "heldout.h5",
             "pseudo": work / "pseudo_exact.h5"}
    for name, n, seed in (("train", n_train, 11), ("heldout", 5000, 12)):
        if not paths[name].exists():  # as `gbsbi simulate --measurement fast` makes it
            spec = BankSpec(ExperimentConfig(), FRESH, n, seed, measurement="fast",
                            sample=STATIONARY, nuisance=MeasurementPrior())
            simulate_bank(paths[name], spec, workers=2)
    if not paths["pseudo"].exists():
        write_pseudo_experiments(paths["pseudo"], PseudoSpec(mode="exact", seed=13),
                                 ExperimentConfig(), FRESH, MeasurementPrior())
    return paths


def ensure_models(work: Path, paths: dict[str, Path], epochs: int) -> dict:
    vanilla = TrainConfig(epochs=epochs, patience=5)
    # stage 2: the vanilla settings with the point estimator's default weights, rate, epochs
    adaptation = Adaptation().stage(vanilla)
    fine = FineTuneConfig()
    runs = {"vanilla": (None, PointConfig()),
            "adapted": (paths["pseudo"], PointConfig(adaptation=adaptation, fine_tune=fine))}
    models = {}
    for name, (experimental, point) in runs.items():
        out = work / f"point-{name}"
        if not (out / "model.json").exists():
            train_model(paths["train"], out, vanilla, point, experimental=experimental,
                        cache=work / "cache", overwrite=True)
        models[name] = load_model(out)
    return models


def matched_simulations(pseudo: Path, scans, inputs) -> np.ndarray:  # noqa: ANN001
    """Network inputs of the pseudo-experiments simulated again with the fast noise model."""
    with h5py.File(pseudo, "r") as f:
        recorded = json.loads(f.attrs["config"])["pseudo"]
    n = len(scans.x)
    fixed = {"counts": np.full(n, recorded["counts"]), "n_pix": np.full(n, recorded["n_pix"]),
             "beta": np.full(n, recorded["beta"])}
    maps = measured_maps(scans.maps.theta, scans.maps.temperature, ExperimentConfig(), fixed,
                         "fast", MeasurementPrior(), np.random.default_rng(21), halves=False)
    return network_inputs(maps["C"], scans.maps.temperature, inputs)


def mean_phi_map(ax, theta: np.ndarray, phi: np.ndarray, bins: int = 16):  # noqa: ANN001, ANN201
    """Mean noiseless Phi over (D, log10 sigma), the background of Fig. 4a and c."""
    stat = binned_statistic_2d(theta[:, 0], np.log10(theta[:, 1]), phi, "mean", bins=bins)
    return ax.pcolormesh(stat.x_edge, stat.y_edge, stat.statistic.T, cmap="magma", vmin=0,
                         vmax=1)


def panel_row(path: Path, title: str, truth: np.ndarray, estimate: np.ndarray,
              held_theta: np.ndarray, held_phi: np.ndarray, pseudo_truth: np.ndarray,
              pseudo_sets: dict[str, np.ndarray], markers: dict[str, str]) -> None:
    """Predicted against true D and log10 sigma, and the estimates on the mean-Phi map."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), constrained_layout=True)
    r2 = r2_score(truth, estimate)
    for j, ax in enumerate(axes[:2]):
        ax.scatter(truth[:, j], estimate[:, j], s=2, alpha=0.3)
        lo, hi = truth[:, j].min(), truth[:, j].max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"true {NAMES[j]}")
        ax.set_ylabel(f"estimated {NAMES[j]}")
        ax.set_title(f"held-out simulations: R$^2$ = {r2[j]:.3f}")
    ax = axes[2]
    mesh = mean_phi_map(ax, held_theta, held_phi)
    fig.colorbar(mesh, ax=ax, label=r"mean noiseless $\Phi$")
    for label, values in pseudo_sets.items():
        ax.scatter(values[:, 0], values[:, 1], s=22, marker=markers[label], label=label,
                   edgecolor="k", linewidth=0.4)
    ax.scatter(pseudo_truth[:, 0], pseudo_truth[:, 1], s=120, marker="*", c="cyan",
               edgecolor="k", label="truth (3 groups)")
    ax.set_xlabel("D [nm$^2$/s]")
    ax.set_ylabel(r"log$_{10}$ $\sigma$ [J/m$^2$]")
    ax.set_title("pseudo-experiments on the mean-$\\Phi$ map")
    ax.legend(fontsize=7, loc="best", framealpha=0.8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("point-study"))
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    paths = ensure_data(args.work, args.n_train)
    models = ensure_models(args.work, paths, args.epochs)
    vanilla, adapted = models["vanilla"], models["adapted"]
    spec = vanilla.spec
    held = bank_inputs(paths["heldout"], spec.inputs, cache=args.work / "cache")
    with h5py.File(paths["heldout"], "r") as f:
        held_phi = f["phi_noiseless"][()]
    scans = scan_inputs(paths["pseudo"], spec.experiment, spec.inputs)
    scaled = spec.prior.to_scale  # (D, log10 sigma, c)
    truth_held, truth_pseudo = scaled(held.theta), scaled(scans.maps.theta)
    x_held = torch.as_tensor(held.x)

    def on_held(model) -> np.ndarray:  # noqa: ANN001
        return scaled(spec.prior.from_unit(predict(model.network, x_held).double().numpy()))

    def on_pseudo(model, heads: str) -> np.ndarray:  # noqa: ANN001
        return point_estimates(model, scans, heads)[0].theta

    held_est = {"vanilla": on_held(vanilla), "adapted": on_held(adapted)}
    pseudo_theta = {"vanilla": on_pseudo(vanilla, "global"),
                    "adapted": on_pseudo(adapted, "global"),
                    "fine-tuned": on_pseudo(adapted, "group")}
    x_matched = matched_simulations(paths["pseudo"], scans, spec.inputs)
    pseudo_theta["vanilla on matched simulations"] = spec.prior.from_unit(
        predict(vanilla.network, torch.as_tensor(x_matched)).double().numpy())
    pseudo_est = {k: scaled(v) for k, v in pseudo_theta.items()}
    truth_u = spec.prior.to_unit(scans.maps.theta)
    results = {
        "n_train": vanilla.meta["bank"]["n"], "n_heldout": len(held.x), "n_pseudo": len(scans.x),
        "settings": {"vanilla": vanilla.meta["training"], "point": adapted.meta["point"]},
        "r2_heldout": {k: dict(zip(NAMES, r2_score(truth_held, v).round(4).tolist(),
                                   strict=True)) for k, v in held_est.items()},
        "rmse_pseudo": {k: dict(zip(NAMES, rmse(truth_pseudo, v).tolist(), strict=True))
                        for k, v in pseudo_est.items()},
        "rmse_pseudo_u": {k: rmse(truth_u, spec.prior.to_unit(v)).tolist()
                          for k, v in pseudo_theta.items()},
        "per_group": {
            str(g): {"truth": scans.maps.theta[scans.maps.group == g][0].tolist(),
                     **{k: v[scans.maps.group == g].mean(0).tolist()
                        for k, v in pseudo_theta.items()}}
            for g in dict.fromkeys(scans.maps.group)},
        "history": {k: json.loads((m.directory / "history.json").read_text())
                    for k, m in models.items()},
        "fine_tuning": adapted.meta.get("fine_tuning"),
    }
    stage0 = [r["val_mse"] for r in results["history"]["adapted"] if r["stage"] == 0]
    results["adapted_stage_1_is_the_vanilla_model"] = stage0 == [
        r["val_mse"] for r in results["history"]["vanilla"]]
    results["maps_per_s"] = {
        f"{k} stage {s}": float(np.mean([r["maps_per_s"] for r in h if r["stage"] == s]))
        for k, h in results["history"].items() for s in {r["stage"] for r in h}}

    RESULTS.mkdir(exist_ok=True)
    theta_pseudo_truth = np.unique(truth_pseudo, axis=0)
    panel_row(RESULTS / "paper_fig4a.png", "Fig. 4a: vanilla regressor", truth_held[:, :2],
              held_est["vanilla"][:, :2], held.theta, held_phi, theta_pseudo_truth,
              {"vanilla estimates": pseudo_est["vanilla"][:, :2]}, {"vanilla estimates": "o"})
    panel_row(RESULTS / "paper_fig4c.png", "Fig. 4c: after adaptation (CORAL + Phi)",
              truth_held[:, :2], held_est["adapted"][:, :2], held.theta, held_phi,
              theta_pseudo_truth, {"adapted": pseudo_est["adapted"][:, :2],
                                   "fine-tuned per group": pseudo_est["fine-tuned"][:, :2]},
              {"adapted": "o", "fine-tuned per group": "s"})
    pick = np.random.default_rng(0).permutation(len(held.x))[:N_UMAP]
    m = len(scans.x)
    simulated = np.r_[np.ones(len(pick), bool), np.zeros(m, bool)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    results["umap_experimental_share"], results["umap_matched_share"] = {}, {}
    for ax, (name, model) in zip(axes, (("before adaptation", vanilla),
                                        ("after adaptation", adapted)), strict=True):
        features = model.features(np.concatenate([held.x[pick], scans.x, x_matched]))
        coords = umap_coordinates(features, seed=0)
        share = own_label_share(coords[: len(simulated)], simulated)[~simulated].mean()
        results["umap_experimental_share"][name] = float(share)
        # among the pseudo-experiments and their matched simulations only: 0.5 when the
        # exact and the fast measurements of the same parameters are alike, 1 when not
        labels = np.r_[np.zeros(m, bool), np.ones(m, bool)]
        results["umap_matched_share"][name] = float(
            own_label_share(coords[len(pick):], labels)[~labels].mean())
        draw_domains(ax, coords[: len(simulated)], simulated, scans.maps.group,
                     f"{name}: {share:.0%} of exp. neighbours exp.")
        ax.scatter(coords[len(simulated):, 0], coords[len(simulated):, 1], s=14, marker="x",
                   c="k", linewidth=0.7, label="matched simulations")
        ax.legend(fontsize=7, markerscale=1.5)
    fig.suptitle("Fig. 4b: UMAP of the feature vectors f(x)")
    fig.savefig(RESULTS / "paper_fig4b.png", dpi=110)
    plt.close(fig)
    results["umap_chance_share"] = (len(scans.x) - 1) / (len(simulated) - 1)
    (RESULTS / "paper_fig4.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "paper_fig4.md").write_text(markdown(results))
    print(markdown(results))


def markdown(r: dict) -> str:
    lines = ["# The paper's Fig. 4 with gbsbi's point estimator", "",
             f"{r['n_train']} training maps simulated as measured (fast noise model), "
             f"{r['n_heldout']} held-out maps, {r['n_pseudo']} exact-measurement "
             "pseudo-experiments (3 groups x 4 temperatures x 5 repeats, seed 13) to adapt to "
             "and to evaluate on. Settings: the defaults of `gbsbi train --estimator point` "
             "(studies/results/point_settings.md).", "",
             "## R2 on held-out simulations", "", "| model | D | log10 sigma | c |",
             "| --- | --- | --- | --- |"]
    for name, row in r["r2_heldout"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[n]:.3f}" for n in NAMES) + " |")
    lines += ["", "## RMSE on the pseudo-experiments", "",
              "| model | D [nm^2/s] | log10 sigma | c | u_D | u_sigma | u_c |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in r["rmse_pseudo"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[n]:.3g}" for n in NAMES) + " | "
                     + " | ".join(f"{v:.3f}" for v in r["rmse_pseudo_u"][name]) + " |")
    lines += ["", "Mean estimates per group (D [nm^2/s], sigma [J/m^2], c):", "",
              "| group | " + " | ".join(r["per_group"][next(iter(r["per_group"]))]) + " |",
              "| --- | " + " | ".join(["---"] * len(r["per_group"][next(iter(r["per_group"]))]))
              + " |"]
    for group, row in r["per_group"].items():
        lines.append(f"| {group} | " + " | ".join(
            ", ".join(f"{v:.3g}" for v in values) for values in row.values()) + " |")
    share = r["umap_experimental_share"]
    lines += ["", "u: each parameter scaled to [0, 1] over the prior (sigma on a log scale). "
              "Three groups mean three true parameter points: an RMSE over them is a coarse "
              "figure.", "", "## Feature space (Fig. 4b)", "",
              "Share of an experimental map's 10 nearest UMAP neighbours that are "
              f"experimental: before adaptation {share['before adaptation']:.2f}, after "
              f"{share['after adaptation']:.2f} (mingled domains: about "
              f"{r['umap_chance_share']:.2f}; islands of their own: near 1). Among the "
              "pseudo-experiments and their matched simulations only (same parameters, fast "
              "noise model), the share of a pseudo-experiment's neighbours that are "
              f"pseudo-experiments: before {r['umap_matched_share']['before adaptation']:.2f},"
              f" after {r['umap_matched_share']['after adaptation']:.2f} (0.5: the exact "
              "measurement looks like the fast one; 1: it does not).", "",
              "## Training speed", "", "| run | maps/s |", "| --- | --- |"]
    lines += [f"| {k} | {v:.0f} |" for k, v in r["maps_per_s"].items()]
    lines += ["", "The adapted model's first stage reproduces the vanilla model: "
              f"{r['adapted_stage_1_is_the_vanilla_model']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
