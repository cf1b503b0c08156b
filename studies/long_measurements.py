"""Long measurements: windows along the diagonal, each with its age (docs/model.md#age).

Simulated long measurements of three windows (6,000 s over 384 frames, exact photon counting,
each measurement its own theta and T from the prior and its own polycrystal; 0.05 photons per
pixel per frame, 20,000 pixels, beta 0.2; a steady beam) are cut into the windows at ages 0,
2,000 and 4,000 s, as `gbsbi import --window 2000 --stride 2000` cuts a long map. Two posterior
estimators trained on banks of the same size and physics are compared:

- ``aged``: on a bank whose windows have ages drawn from (0, 4000) s, a share ``--age-zero``
  of them (default 0.5) at age 0 exactly, the age an input;
- ``fresh``: on a bank without ages (every window starts at the initial shape);

both with the physics and training settings of ``--fresh-model`` where given (else the
polycrystal and plain NPE). The long measurements are polycrystals with stationary dynamics,
inside both models' priors.

Reported: RMSE and R^2 of the posterior mean on held-out simulations at age 0 (the in-model
accuracy the age input may cost), 90 % coverage and RMSE per parameter and window age, and for
the aged model the joint posterior of each measurement's windows (`gbsbi group --law none
--shared D,sigma,c`): its coverage and the width of its 90 % intervals against one window's.
Writes studies/results/long_measurements.json, .md and .png. ``--spread`` instead trains the
aged model twice more (training seeds 1 and 2, same bank) and scores the age-0 R^2 of the
three against three trainings of the fresh model (long_measurements_spread.json).

Usage: python studies/long_measurements.py --work DIR [--n 60] [--n-train 20000] [--age-zero 0.5]
       [--fresh-model DIR --heldout BANK]  (reuse studies/scaling.py's n20000 model)
       python studies/long_measurements.py --work DIR --fresh-model DIR --heldout BANK
       --spread FRESH_SEED1,FRESH_SEED2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from shifted_sets import BETA, COUNTS, N_PIX, POLYCRYSTAL  # noqa: E402

from gbsbi.bank import BankSpec, simulate_bank  # noqa: E402
from gbsbi.group import group_posterior  # noqa: E402
from gbsbi.group.config import GroupSettings  # noqa: E402
from gbsbi.inference.config import TrainConfig  # noqa: E402
from gbsbi.inference.data import bank_inputs, scan_inputs  # noqa: E402
from gbsbi.inference.model import load_model  # noqa: E402
from gbsbi.inference.npe.config import settings  # noqa: E402
from gbsbi.inference.npe.predict import load_posterior, posterior_draws  # noqa: E402
from gbsbi.inference.pipeline import train_model  # noqa: E402
from gbsbi.io.mapsfile import Maps, write_maps  # noqa: E402
from gbsbi.validation.calibration import LEVEL, r2_score, rmse  # noqa: E402
from simulators.config import FRESH, ExperimentConfig, MeasurementPrior, Prior  # noqa: E402
from simulators.measured import measured_maps  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PARAMS = ("D", "log10 sigma", "c")
WINDOWS = 3
#: The aged model's ages: uniform over (0, 4000) s, a share ``--age-zero`` of them 0.
AGES = (0.0, 4000.0)
STEADY = MeasurementPrior(drift=(0.0, 0.0), dropped=(0.0, 0.0))


def train(work: Path, name: str, prior: Prior, n: int, epochs: int, seed: int,
          like: Path | None = None, training_seed: int | None = None,
          bank_name: str | None = None) -> Path:
    """The model ``name`` trained on a fresh bank of ``n`` maps with ``prior``: with the
    physics and training settings of the model ``like`` where given (the same estimator but
    for the ages), else the polycrystal and plain NPE; on the bank of ``bank_name`` and with
    ``training_seed`` where given (another training of the same bank)."""
    out = work / "models" / name
    if (out / "model.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    sample, nuisance = POLYCRYSTAL, MeasurementPrior()
    training, estimator = settings(TrainConfig(epochs=epochs), False, members=1)
    if like is not None:
        spec = load_model(like).spec
        sample, nuisance, training, estimator = (spec.sample, spec.nuisance, spec.training,
                                                 spec.estimator)
    if training_seed is not None:
        training = replace(training, seed=training_seed)
    bank = work / f"train-{bank_name or name}.h5"
    if not bank.exists():
        simulate_bank(bank, BankSpec(ExperimentConfig(), prior, n, seed, measurement="fast",
                                     sample=sample, nuisance=nuisance), workers=2)
    start = time.perf_counter()
    train_model(bank, out, training, estimator, cache=work / "cache", overwrite=True,
                show_progress=False)
    print(f"model {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return out


def long_measurements(path: Path, n: int, seed: int) -> Path:
    """n measurements of WINDOWS windows each, cut into windows with their ages."""
    if path.exists():
        return path
    base = ExperimentConfig()
    long = replace(base, n_frames=WINDOWS * base.n_frames, window=WINDOWS * base.window)
    rng = np.random.default_rng(seed)
    theta, temperature = Prior().sample(n, rng)
    T = base.n_frames
    C, names, ages, groups = [], [], [], []
    start = time.perf_counter()
    for k in range(n):
        nuisance = {"counts": np.array([COUNTS]), "n_pix": np.array([N_PIX]),
                    "beta": np.array([BETA]), **POLYCRYSTAL.sample(1, rng)}
        full = measured_maps(theta[k:k + 1], temperature[k:k + 1], long, nuisance, "exact",
                             STEADY, rng)["C"][0]
        for w in range(WINDOWS):
            C.append(full[w * T:(w + 1) * T, w * T:(w + 1) * T])
            age = w * base.window
            names.append(f"m{k + 1}@{age:g}s")
            ages.append(age)
            groups.append(f"m{k + 1}")
    print(f"{n} long measurements in {time.perf_counter() - start:.0f} s", flush=True)
    write_maps(path, Maps(np.stack(C).astype(np.float32), base.t,
                          np.repeat(temperature, WINDOWS), np.full(n * WINDOWS, base.q),
                          scan=np.array(names), group=np.array(groups),
                          theta=np.repeat(theta, WINDOWS, axis=0), age=np.array(ages)))
    return path


def interval_scores(prior: Prior, drawn: np.ndarray, theta: np.ndarray) -> dict:
    """RMSE, R^2 of the mean, coverage and width of the 90 % intervals on the prior's scale
    (width as a fraction of the prior's range); drawn (draws, n, 3)."""
    scaled, truth = prior.to_scale(drawn), prior.to_scale(theta)
    low, high = np.quantile(scaled, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    span = prior.scale_bounds()[1] - prior.scale_bounds()[0]
    mean = scaled.mean(axis=0)
    return {"n": len(theta), "rmse": rmse(truth, mean).tolist(),
            "r2": r2_score(truth, mean).tolist(),
            "coverage_90": ((truth >= low) & (truth <= high)).mean(0).tolist(),
            "width_90": ((high - low) / span).mean(0).tolist()}


def per_window(model_dir: Path, maps_path: Path, draws: int, seed: int) -> dict:
    """Scores of each window age of the long measurements."""
    model = load_model(model_dir)
    scans = scan_inputs(maps_path, model.spec.experiment, model.spec.inputs)
    drawn = posterior_draws(model, scans.x, draws, seed)
    out = {}
    for age in np.unique(scans.maps.age):
        pick = scans.maps.age == age
        out[f"{age:g}"] = interval_scores(model.spec.prior, drawn[:, pick], scans.maps.theta[pick])
    return out


def joined(model_dir: Path, maps_path: Path, seed: int) -> dict:
    """Each measurement's windows joined (D, sigma and c shared): coverage and width."""
    from gbsbi.io.mapsfile import read_maps

    posterior = load_posterior(model_dir)
    maps = read_maps(maps_path)
    prior = posterior.model.spec.prior
    joint, truth = [], []
    start = time.perf_counter()
    for group in dict.fromkeys(maps.group):
        pick = maps.group == group
        data = group_posterior(posterior, maps.C[pick], maps.temperature[pick], law="none",
                               shared=("D", "sigma", "c"), age=maps.age[pick],
                               settings=GroupSettings(draws=1000, seed=seed))
        joint.append(np.stack([data.posterior[n].values[..., 0].ravel()
                               for n in ("D", "sigma", "c")], -1))
        truth.append(maps.theta[pick][0])
    seconds = time.perf_counter() - start
    drawn = np.stack(joint, axis=1)  # (draws, measurements, 3)
    return {**interval_scores(prior, drawn, np.array(truth)),
            "seconds_per_group": seconds / len(truth)}


def accuracy_at_age_zero(model_dir: Path, heldout: Path, work: Path, draws: int,
                         seed: int) -> dict:
    model = load_model(model_dir)
    held = bank_inputs(heldout, model.spec.inputs, cache=work / "cache")
    return interval_scores(model.spec.prior, posterior_draws(model, held.x, draws, seed),
                           held.theta)


def table(results: dict) -> str:
    lines = ["| model | window age [s] | RMSE D / log10 sigma / c | R2 | 90 % coverage | "
             "90 % width (of prior range) |", "| --- | --- | --- | --- | --- | --- |"]

    def row(name: str, where: str, r: dict) -> str:
        return (f"| {name} | {where} | {' / '.join(f'{v:.3g}' for v in r['rmse'])} | "
                f"{' / '.join(f'{v:.2f}' for v in r['r2'])} | "
                f"{' / '.join(f'{v:.2f}' for v in r['coverage_90'])} | "
                f"{' / '.join(f'{v:.2f}' for v in r['width_90'])} |")

    for name in ("aged", "fresh"):
        lines.append(row(name, "held-out, age 0", results["heldout"][name]))
        for age, r in results["windows"][name].items():
            lines.append(row(name, age, r))
    lines.append(row("aged, windows joined", "0, 2000, 4000", results["joined"]))
    return "\n".join(lines)


def figure(results: dict, path: Path) -> None:
    from gbsbi.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True, sharey=True)
    for j, (ax, param) in enumerate(zip(axes, PARAMS, strict=True)):
        for k, name in enumerate(("aged", "fresh")):
            ages = [float(a) for a in results["windows"][name]]
            cover = [r["coverage_90"][j] for r in results["windows"][name].values()]
            ax.plot(np.array(ages) + 60 * (k - 0.5), cover, "o-", label=f"{name} model")
        ax.plot([0], [results["joined"]["coverage_90"][j]], "s", color="C2",
                label="aged, windows joined")
        ax.axhline(0.9, color="0.5", ls=":", lw=1)
        ax.axhline(0.85, color="C3", ls="--", lw=1, label="target 0.85")
        ax.set_xlabel("window age [s]")
        ax.set_title(param, fontsize=10)
    axes[0].set_ylabel("90 % coverage")
    axes[0].set_ylim(0, 1.02)
    axes[-1].legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spread(args: argparse.Namespace, aged: Prior) -> None:
    """Age-0 R^2 of three trainings of each model (training seeds 0, 1, 2, the same banks):
    the figure the target compares, with its spread."""
    aged_models = [train(args.work, "aged", aged, args.n_train, args.epochs, args.seed,
                         args.fresh_model)]
    for s in (1, 2):
        aged_models.append(train(args.work, f"aged-seed{s}", aged, args.n_train, args.epochs,
                                 args.seed, args.fresh_model, training_seed=s,
                                 bank_name="aged"))
    fresh_models = [args.fresh_model] + [Path(p) for p in args.spread.split(",")]
    scores = {kind: [accuracy_at_age_zero(d, args.heldout, args.work, args.draws, args.seed)
                     ["r2"] for d in models]
              for kind, models in (("aged", aged_models), ("fresh", fresh_models))}
    mean = {kind: np.mean(v, axis=0) for kind, v in scores.items()}
    out = {"r2": scores, "mean": {k: v.round(4).tolist() for k, v in mean.items()},
           "sd": {k: np.std(v, axis=0, ddof=1).round(4).tolist() for k, v in scores.items()},
           "loss_of_means": (mean["fresh"] - mean["aged"]).round(4).tolist(),
           "models": {"aged": [str(d) for d in aged_models],
                      "fresh": [str(d) for d in fresh_models]}}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "long_measurements_spread.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--n", type=int, default=60, help="long measurements")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--fresh-model", type=Path,
                        help="a model without ages (bank of --n-train maps); the aged model "
                        "is trained with its physics and settings")
    parser.add_argument("--heldout", type=Path, help="held-out bank at age 0")
    parser.add_argument("--age-zero", type=float, default=0.5,
                        help="share of the aged bank's windows at age 0 (Prior.age_zero)")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--spread", metavar="MODEL,...",
                        help="only the age-0 accuracy's spread: train the aged model again "
                        "with training seeds 1 and 2 (same bank) and score them and these "
                        "other trainings of the fresh model on --heldout")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    aged = Prior(age=AGES, age_zero=args.age_zero)
    if args.spread:
        if args.fresh_model is None or args.heldout is None:
            parser.error("--spread needs --fresh-model and --heldout (the fresh model's first "
                         "training and the held-out bank at age 0)")
        spread(args, aged)
        return
    models = {"aged": train(args.work, "aged", aged, args.n_train, args.epochs, args.seed,
                            args.fresh_model),
              "fresh": args.fresh_model or train(args.work, "fresh", FRESH, args.n_train,
                                                 args.epochs, args.seed)}
    heldout = args.heldout or args.work / "heldout.h5"
    if not heldout.exists():
        simulate_bank(heldout, BankSpec(ExperimentConfig(), FRESH, 1000, args.seed + 1,
                                        measurement="fast", sample=POLYCRYSTAL), workers=2)
    maps = long_measurements(args.work / "long.h5", args.n, args.seed)
    results = {
        "heldout": {name: accuracy_at_age_zero(d, heldout, args.work, args.draws, args.seed)
                    for name, d in models.items()},
        "windows": {name: per_window(d, maps, args.draws, args.seed)
                    for name, d in models.items()},
        "joined": joined(models["aged"], maps, args.seed),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "long_measurements.json").write_text(json.dumps(
        {"settings": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
    figure(results, args.results / "long_measurements.png")
    text = table(results)
    (args.results / "long_measurements_table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
