"""Robust training, studied: which estimator keeps its intervals honest beyond the model?

Every estimator is a posterior estimator trained on a bank simulated as measured (`gbsbi
simulate --measurement fast`). ``plain`` and its variants train on the polycrystal physics
(boundaries of several lengths and tilts, static scatterers, beam drift, dropped frames);
``broad`` adds the departures of the dynamics of simulators/dynamics.py as nuisances (a
stretched or compressed bulk, a drifting bulk rate, a wandering beam, intermittent events;
ranges in BROAD); ``single`` is the model before polycrystals (one boundary, steady beam). They
are scored on held-out simulations of the polycrystal physics (the in-model R^2 every estimator
is held to) and on the sets of studies/shifted_sets.py (each map its own theta from the prior,
exact photon counting):

- ``plain``: plain NPE;
- ``coral-phi``: adapted to the pooled maps of every set (unlabelled) with CORAL and the Phi
  term at `gbsbi train --experimental`'s default weights;
- ``npe-rs``: adapted with the MMD between simulated and observed embeddings (Huang et al.
  2023), weight ``--mmd-weight``;
- ``nnpe``: noise augmentation of the standardised inputs (sd ``--augment-noise``;
  ``nnpe-0.6`` names its own sd);
- ``broad``: plain NPE with the dynamics as nuisances;
- ``broad+nnpe``: both;
- ``mild``, ``mild+nnpe``: as ``broad``, with every departure's range halved (MILD): how much
  of broad's honesty beyond the model is kept for how much of its sharpness;
- ``aged+nnpe``: nnpe on a bank whose windows have ages (AGED, the default prior since issue
  16), scored on the same maps, all at age 0;
- ``aged-wander+nnpe``, ``aged-stretch+nnpe``: aged+nnpe with one of broad's departures
  carried, at broad's range (ONE_DEPARTURE);
- ``aged+nnpe-x3``: aged+nnpe as an ensemble of three members (`gbsbi train --members 3`,
  docs/inference.md#ensemble; Hermans et al. 2022, sbi's ``EnsemblePosterior``): does mixing
  trainings widen the intervals where they miss, or is a miss a bias every training shares?
  Every other estimator is one training (``--members 1``);
- ``aged-broadNN+nnpe-x3`` (NN = 5, 10, 25 or 50): the ensemble
  on a bank where a share of 5, 10, 25 or 50 % of the maps carries broad's four departures at
  their full ranges and the rest the stationary dynamics (SHARED, ``sample.departure_share``):
  does a prior with most of its mass on the model's own dynamics keep more of the sharpness
  per unit of honesty than halving the ranges (mild)?
- ``aged-eachNN+nnpe-x3`` (NN = 2.5 or 5): as ``aged-broadNN``, but each of the four
  departures is on by itself on NN % of the maps, independently of the others (EACH,
  ``sample.departure_draw`` each): the shifted sets carry one effect each, a corner of the
  four-at-once slab; does prior mass on single departures cover them?
- ``aged-broad5+nnpe-SD-x3`` (SD = 0.45 or 0.6): the default (``aged-broad5+nnpe-x3``) with
  noise of sd SD instead of 0.3: does more input noise spend the default's R^2 headroom on
  honesty beyond the model?

For each estimator and set: RMSE and R^2 of the posterior mean, 90 % coverage, the flag rate
(misspecification p < 0.05, docs/validation.md) and the silent-miss rate per parameter (the 90 %
interval misses the truth and the scan is not flagged). Writes studies/results/robustness.json,
robustness_table.md, robustness.png and robustness_tradeoff.png; estimators of an earlier run
that this one does not score keep their scores there, each marked with the version of the
misspecification reference it was scored with (``scored_with``). An estimator this run names
whose model holds an older reference gets it fitted again (same held-out split of its bank)
and is scored again; cached scores of the current reference are reused.

``--more N`` scores the estimators again on a second draw of every set (seed ``--seed`` + 1,
N maps per set, ``--more-in-model`` maps of the in-model set) and pools it with the first
(weighted by maps): robustness_pooled.json and robustness_pooled_table.md, for the rates near
the target that 60 maps per set cannot resolve.

Usage: python studies/robustness.py --work DIR [--n-train 20000] [--n-set 60]
       [--n-heldout 1000] [--estimators plain,nnpe,...] [--more 120 --more-in-model 300]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from shifted_sets import BEYOND, IN_MODEL, MODELLED, POLYCRYSTAL, SETS, simulate_set  # noqa: E402

from gbsbi.bank import BankSpec, simulate_bank  # noqa: E402
from gbsbi.inference.config import TrainConfig  # noqa: E402
from gbsbi.inference.data import bank_inputs, bank_maps, scan_inputs  # noqa: E402
from gbsbi.inference.misspecification import VERSION as REFERENCE  # noqa: E402
from gbsbi.inference.model import load_model  # noqa: E402
from gbsbi.inference.npe.config import settings  # noqa: E402
from gbsbi.inference.npe.predict import posterior_draws  # noqa: E402
from gbsbi.inference.pipeline import train_model  # noqa: E402
from gbsbi.io.mapsfile import Maps, read_maps, write_maps  # noqa: E402
from gbsbi.validation.calibration import LEVEL, r2_score, rmse  # noqa: E402
from gbsbi.validation.misspecification import (  # noqa: E402
    fit_reference_to_model,
    scan_tests,
)
from simulators.config import (  # noqa: E402
    FRESH,
    SINGLE_BOUNDARY,
    ExperimentConfig,
    MeasurementPrior,
    Prior,
    SamplePrior,
)

RESULTS = Path(__file__).parent / "results"
PARAMS = ("D", "log10 sigma", "c")
ESTIMATORS = ("plain", "nnpe", "npe-rs", "coral-phi", "broad", "broad+nnpe")
SINGLE = (SINGLE_BOUNDARY,
          MeasurementPrior(drift=(0.0, 0.0), dropped=(0.0, 0.0)))
BROAD = SamplePrior(stretch=(0.5, 1.5), rate_drift=(-1.0, 1.0), wander=(0.0, 1.0),
                    events=(0.0, 3.0), departure_share=1.0)
AGED = Prior(age=(0.0, 4000.0))
MILD = SamplePrior(stretch=(0.75, 1.25), rate_drift=(-0.5, 0.5), wander=(0.0, 0.5),
                   events=(0.0, 1.5), departure_share=1.0)
#: One departure of BROAD at a time, on the default prior with ages (the banks of
#: ``aged-wander+nnpe`` and ``aged-stretch+nnpe``): what carrying each alone costs and buys.
ONE_DEPARTURE = {"aged-wander": replace(POLYCRYSTAL, wander=BROAD.wander),
                 "aged-stretch": replace(POLYCRYSTAL, stretch=BROAD.stretch)}
#: BROAD's four departures at their full ranges on a share of the maps (the banks of
#: ``aged-broadNN+nnpe``, NN the share in percent), the rest stationary, on the default prior
#: with ages: a prior whose mass sits mostly on the model's own dynamics.
SHARED = {f"aged-broad{p}": replace(BROAD, departure_share=p / 100) for p in (5, 10, 25, 50)}
#: BROAD's departures each on by itself on a share of the maps (``departure_draw`` each; the
#: banks of ``aged-eachNN+nnpe``): single departures, which the shifted sets carry, get prior
#: mass of their own instead of a corner of the four-at-once slab.
EACH = {f"aged-each{p:g}": replace(BROAD, departure_share=p / 100, departure_draw="each")
        for p in (2.5, 5)}
OWN_BANKS = {**ONE_DEPARTURE, **SHARED, **EACH}


def bank_of(name: str) -> str:
    """The training bank of estimator ``name``."""
    # the longest name first: aged-broad50 before aged-broad5
    for bank in sorted((*OWN_BANKS, "single", "broad", "mild", "aged"), key=len, reverse=True):
        if name.startswith(bank):
            return bank
    return "train"


def banks(work: Path, n_train: int, n_heldout: int, seed: int,
          names: list[str]) -> dict[str, Path]:
    """The training banks the estimators ``names`` need and the held-out bank."""
    paths = {"train": work / "train.h5", "single": work / "train-single.h5",
             "broad": work / "train-broad.h5", "mild": work / "train-mild.h5",
             "aged": work / "train-aged.h5",
             **{name: work / f"train-{name}.h5" for name in OWN_BANKS},
             "heldout": work / "heldout.h5"}
    config, prior = ExperimentConfig(), FRESH
    specs = {
        "train": BankSpec(config, prior, n_train, seed, measurement="fast", sample=POLYCRYSTAL),
        "single": BankSpec(config, prior, n_train, seed, measurement="fast",
                           sample=SINGLE[0], nuisance=SINGLE[1]),
        "broad": BankSpec(config, prior, n_train, seed, measurement="fast", sample=BROAD),
        "mild": BankSpec(config, prior, n_train, seed, measurement="fast", sample=MILD),
        "aged": BankSpec(config, AGED, n_train, seed, measurement="fast", sample=POLYCRYSTAL),
        **{name: BankSpec(config, AGED, n_train, seed, measurement="fast", sample=sample)
           for name, sample in OWN_BANKS.items()},
        "heldout": BankSpec(config, prior, n_heldout, seed + 1, measurement="fast",
                            sample=POLYCRYSTAL),
    }
    needed = {bank_of(name) for name in names} | {"heldout"}
    for name, spec in specs.items():
        if name in needed and not paths[name].exists():
            start = time.perf_counter()
            simulate_bank(paths[name], spec, workers=2)
            print(f"{name}: {spec.n} maps in {time.perf_counter() - start:.0f} s", flush=True)
    return paths


def sets(work: Path, n: int, seed: int, folder: str = "sets",
         n_in_model: int | None = None) -> dict[str, Path]:
    """Each set of studies/shifted_sets.py as a maps file (the in-model set of ``n_in_model``
    maps where given), and all of them pooled without their theta (what the adapted
    estimators adapt to)."""
    paths = {kind: work / folder / f"{kind}.h5" for kind in SETS}
    paths["pooled"] = work / folder / "pooled.h5"
    (work / folder).mkdir(parents=True, exist_ok=True)
    for kind in SETS:
        if not paths[kind].exists():
            start = time.perf_counter()
            size = n_in_model if kind in IN_MODEL and n_in_model else n
            write_maps(paths[kind], simulate_set(kind, size, seed))
            print(f"set {kind}: {size} maps in {time.perf_counter() - start:.0f} s",
                  flush=True)
    if not paths["pooled"].exists():
        parts = [read_maps(paths[kind]) for kind in SETS]
        pooled = Maps(np.concatenate([m.C for m in parts]), parts[0].t,
                      np.concatenate([m.temperature for m in parts]),
                      np.concatenate([m.q for m in parts]),
                      scan=np.concatenate([m.scan for m in parts]))
        write_maps(paths["pooled"], pooled)
    return paths


def members(name: str) -> int:
    """The members of estimator ``name``: K for ``NAME-xK``, else 1."""
    base, _, k = name.rpartition("-x")
    return int(k) if base and k.isdigit() else 1


def noise_of(name: str, noise: float) -> float:
    """The input noise's sd of estimator ``name``: that its name gives (``nnpe-0.6``, or
    ``nnpe-0.6-x3`` for an ensemble), else ``noise`` for an nnpe estimator and 0 for others."""
    sd = re.search(r"nnpe-([0-9.]+)(-x[0-9]+)?$", name)
    return float(sd.group(1)) if sd else noise if "nnpe" in name else 0.0


def train(name: str, work: Path, paths: dict, sets_: dict, epochs: int, mmd: float,
          noise: float) -> Path:
    """The estimator ``name``'s model directory, trained if it is not there."""
    out = work / "models" / name
    if (out / "model.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    adapted = name in ("coral-phi", "npe-rs")
    base = TrainConfig(epochs=epochs)
    if name == "npe-rs":
        training, estimator = settings(base, True, 0.0, 0.0, mmd, 0.0, members=1)
    else:
        training, estimator = settings(base, adapted, augment_noise=noise_of(name, noise),
                                       members=members(name))
    bank = paths[bank_of(name)]
    start = time.perf_counter()
    train_model(bank, out, training, estimator,
                experimental=sets_["pooled"] if adapted else None,
                cache=work / "cache", overwrite=True, show_progress=False)
    print(f"model {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return out


SCORED_WITH = f"misspecification reference v{REFERENCE}"


def current(name: str, model_dir: Path, paths: dict, work: Path, done: dict) -> None:
    """Fit the model's misspecification reference again where it is older than this gbsbi's,
    and forget the scores it gave (they are redone)."""
    meta = json.loads((model_dir / "misspecification.json").read_text())
    if meta.get("version", 1) < REFERENCE:
        start = time.perf_counter()
        fit_reference_to_model(model_dir, paths[bank_of(name)], cache=work / "cache",
                               overwrite=True, log=lambda line: None)
        print(f"{name}: reference v{meta.get('version', 1)} fitted again as v{REFERENCE} in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    if done.get(name, {}).get("scored_with") != SCORED_WITH:
        done.pop(name, None)


def per_map(model, x: np.ndarray, theta: np.ndarray, maps: np.ndarray | None,  # noqa: ANN001
            temperature: np.ndarray, draws: int, seed: int) -> dict:
    """Each map's 90 % interval and posterior mean (on the prior's scale, shape (n, 3)),
    whether it misses the truth (n, 3) and, where ``maps`` are given, its misspecification
    tests (``tested``, None where the model has no reference)."""
    prior = model.spec.prior
    drawn = posterior_draws(model, x, draws, seed)  # (draws, n, 3)
    scaled, truth = prior.to_scale(drawn), prior.to_scale(theta)
    low, high = np.quantile(scaled, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    mean = scaled.mean(axis=0)
    # a map without draws (its posterior outside the prior) covers nothing; it is flagged, so
    # it is no silent miss, and it has no estimate for RMSE and R^2
    drawn_ok = np.isfinite(mean).all(axis=1)
    miss = (truth < low) | (truth > high) | ~drawn_ok[:, None]
    tested = (None if maps is None
              else scan_tests(model, x, maps, temperature, drawn, seed))
    return {"truth": truth, "mean": mean, "low": low, "high": high, "drawn_ok": drawn_ok,
            "miss": miss, "tested": tested}


def score(model, x: np.ndarray, theta: np.ndarray, maps: np.ndarray | None,  # noqa: ANN001
          temperature: np.ndarray, draws: int, seed: int) -> dict:
    """Accuracy, coverage, flags and silent misses of a set with known theta."""
    prior = model.spec.prior
    each = per_map(model, x, theta, maps, temperature, draws, seed)
    drawn_ok, miss, truth, mean = each["drawn_ok"], each["miss"], each["truth"], each["mean"]
    out = {"n": len(x), "no_draws": int((~drawn_ok).sum()),
           "rmse": rmse(truth[drawn_ok], mean[drawn_ok]).tolist(),
           "r2": r2_score(truth[drawn_ok], mean[drawn_ok]).tolist(),
           "coverage_90": (~miss).mean(0).tolist(),
           "width_90": ((each["high"] - each["low"])[drawn_ok]
                        / (prior.scale_bounds()[1] - prior.scale_bounds()[0])).mean(0).tolist()}
    tested = each["tested"]
    if tested is not None:
        flags = tested.flagged
        out["flag_rate"] = float(flags.mean())
        out["silent_miss"] = (miss & ~flags[:, None]).mean(0).tolist()
        out["flag_rate_by_test"] = {k: float((v < tested.alpha).mean())
                                    for k, v in tested.tests.items()}
    return out


def evaluate(name: str, model_dir: Path, paths: dict, sets_: dict, n_flag: int,
             draws: int, seed: int, work: Path) -> dict:
    """Every set's scores for one estimator (held-out: accuracy on all, flags on
    ``n_flag``)."""
    model = load_model(model_dir)
    spec = model.spec
    held = bank_inputs(paths["heldout"], spec.inputs, cache=work / "cache")
    index = np.arange(min(n_flag, len(held.x)))
    C, temperature, _ = bank_maps(paths["heldout"], index)  # its banks have no ages
    results = {"held-out": score(model, held.x, held.theta, None, held.temperature, draws,
                                 seed)}
    flagged = score(model, held.x[index], held.theta[index], C, temperature, draws, seed)
    results["held-out"] |= {k: flagged[k] for k in ("flag_rate", "silent_miss",
                                                    "flag_rate_by_test") if k in flagged}
    results |= score_sets(model, sets_, draws, seed)
    results["reference"] = {k: model.meta.get(k) for k in ("surrogate_fit",)}
    history = json.loads((model_dir / "history.json").read_text())
    results["epochs"] = len(history)
    return results


def score_sets(model, sets_: dict, draws: int, seed: int) -> dict:  # noqa: ANN001
    """One estimator's scores on every set of ``sets_``."""
    out = {}
    for kind in SETS:
        scans = scan_inputs(sets_[kind], model.spec.experiment, model.spec.inputs)
        out[kind] = score(model, scans.x, scans.maps.theta, scans.maps.C,
                          scans.maps.temperature, draws, seed)
    return out


def _weighted(a: dict, b: dict, key: str, power: int = 1) -> np.ndarray:
    """The maps-weighted mean of ``key`` ** power over two draws' scores of one set."""
    return ((a["n"] * np.asarray(a[key]) ** power + b["n"] * np.asarray(b[key]) ** power)
            / (a["n"] + b["n"]))


def pool(first: dict, second: dict) -> dict:
    """Coverage, flag and silent-miss rates of two draws of the sets, weighted by maps, and
    the RMSE as the root of the maps-weighted mean square."""
    out = {}
    for kind in SETS:
        a, b = first[kind], second[kind]
        out[kind] = {"n": a["n"] + b["n"], "rmse": np.sqrt(_weighted(a, b, "rmse", 2)).tolist(),
                     **{key: _weighted(a, b, key).round(4).tolist()
                        for key in ("coverage_90", "silent_miss", "flag_rate")}}
    return out


def cells_over(per_set: dict, target: float = 0.15) -> int:
    """How many of the shifted sets x 3 parameters have a silent-miss rate above ``target``."""
    return int((np.array([per_set[kind]["silent_miss"] for kind in MODELLED + BEYOND])
                > target).sum())


def pooled_table(pooled: dict) -> str:
    """Silent miss D / log10 sigma / c (flag rate) per set, one column per estimator."""
    names = list(pooled)
    lines = ["| set | maps | " + " | ".join(names) + " |", "| --- | --- | "
             + " | ".join("---" for _ in names) + " |"]
    for kind in SETS:
        cells = [" / ".join(f"{v:.2f}" for v in pooled[name][kind]["silent_miss"])
                 + f" ({pooled[name][kind]['flag_rate']:.2f})" for name in names]
        lines.append(f"| {kind} | {pooled[names[0]][kind]['n']} | " + " | ".join(cells) + " |")
    over = [f"{cells_over(pooled[n])} of {3 * len(MODELLED + BEYOND)}" for n in names]
    lines.append("| shifted cells > 0.15 | | " + " | ".join(over) + " |")
    return "\n".join(lines)


def more(args: argparse.Namespace, names: list[str], done: dict) -> None:
    """The second draw of the sets, scored and pooled with the first (``--more``)."""
    extra = sets(args.work, args.more, args.seed + 1, f"sets-{args.seed + 1}",
                 args.more_in_model)
    store = args.work / f"scores-{args.seed + 1}.json"
    scored = json.loads(store.read_text()) if store.exists() else {}
    for name in names:
        if scored.get(name, {}).get("scored_with") != SCORED_WITH:
            scored[name] = {"scored_with": SCORED_WITH,
                            **score_sets(load_model(args.work / "models" / name), extra,
                                         args.draws, args.seed)}
            store.write_text(json.dumps(scored, indent=1))
            print(f"scored {name} on the second draw", flush=True)
    # every estimator scored on both draws, this run's and earlier ones'
    both = [name for name in done if name in scored]
    pooled = {name: pool(done[name], scored[name]) for name in both}
    (args.results / "robustness_pooled.json").write_text(json.dumps(
        {"seeds": [args.seed, args.seed + 1], "maps": {"first": args.n_set,
                                                      "second": args.more,
                                                      "second_in_model": args.more_in_model},
         "scored_with": {name: {"first": done[name].get("scored_with", "unknown"),
                                "second": scored[name].get("scored_with", "unknown")}
                         for name in both}, "pooled": pooled,
         "second": {name: scored[name] for name in both}}, indent=1))
    text = pooled_table(pooled)
    (args.results / "robustness_pooled_table.md").write_text(text + "\n")
    print(text)


def table(results: dict) -> str:
    """The markdown table: one row per estimator and set."""
    head = ("| estimator | set | RMSE D / log10 sigma / c | R2 | 90 % coverage | flag rate | "
            "silent miss D / log10 sigma / c |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, per_set in results.items():
        for kind in ("held-out", *SETS):
            r = per_set[kind]
            sm = r.get("silent_miss")
            lines.append(
                f"| {name} | {kind} | {' / '.join(f'{v:.3g}' for v in r['rmse'])} | "
                f"{' / '.join(f'{v:.2f}' for v in r['r2'])} | "
                f"{' / '.join(f'{v:.2f}' for v in r['coverage_90'])} | "
                f"{r.get('flag_rate', float('nan')):.2f} | "
                + ("-" if sm is None else " / ".join(f"{v:.2f}" for v in sm)) + " |")
    return "\n".join(lines)


def figure(results: dict, path: Path) -> None:
    from gbsbi.plots import pyplot

    plt = pyplot()
    kinds = ("held-out", *SETS)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5), layout="constrained", sharey=True)
    colours = plt.get_cmap("tab20").colors  # one colour per estimator (up to 20)
    step = 0.8 / max(len(results), 1)  # each set's estimators side by side within its tick
    for k, (ax, param) in enumerate(zip(axes, PARAMS, strict=True)):
        for j, (name, per_set) in enumerate(results.items()):
            values = [per_set[kind].get("silent_miss", [np.nan] * 3)[k] for kind in kinds]
            ax.plot(np.arange(len(kinds)) + step * (j - (len(results) - 1) / 2), values,
                    "os^"[j // 20 % 3], ms=4, color=colours[j % 20], label=name)
        ax.axhline(0.15, color="C3", ls="--", lw=1, label="target 0.15")
        ax.axhline(0.095, color="0.5", ls=":", lw=1, label="calibrated, unflagged (0.095)")
        ax.set_xticks(np.arange(len(kinds)))
        ax.set_xticklabels(kinds, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"silent misses of {param}", fontsize=10)
    axes[0].set_ylabel("share of maps: 90 % interval misses, scan not flagged")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tradeoff(results: dict, path: Path) -> None:
    """Each estimator's mean silent-miss rate over the sets against its largest loss of
    held-out R^2 to plain NPE: the rule that picks the default, drawn."""
    from gbsbi.plots import pyplot

    if "plain" not in results:
        return
    plain = np.array(results["plain"]["held-out"]["r2"])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5), constrained_layout=True)
    key = []  # points carry numbers, the names are listed beside the axes: no labels overlap
    placed: list[tuple[float, float]] = []
    for k, (name, per_set) in enumerate(results.items(), start=1):
        loss = float((plain - np.array(per_set["held-out"]["r2"])).max())
        miss = np.array([per_set[kind]["silent_miss"] for kind in SETS]).mean()
        ax.plot(loss, miss, "o", color="C0")
        # a point on top of an earlier one (within 0.003 of loss, 0.002 of rate) is labelled
        # on its left, so the two numbers stay apart
        left = any(abs(loss - x) < 0.003 and abs(miss - y) < 0.002 for x, y in placed)
        ax.annotate(str(k), (loss, miss), fontsize=8, xytext=(-4 if left else 4, 3),
                    textcoords="offset points", ha="right" if left else "left")
        placed.append((loss, miss))
        key.append(f"{k}  {name} ({cells_over(per_set)} cells > 0.15)")
    ax.text(1.03, 1.0, "\n".join(key), transform=ax.transAxes, fontsize=8, va="top")
    ax.axvline(0.03, color="C3", ls="--", lw=1, label="rule: R^2 loss <= 0.03")
    ax.axhline(0.095, color="0.5", ls=":", lw=1, label="calibrated, unflagged (0.095)")
    ax.set_xlabel("largest loss of held-out R^2 against plain NPE (D, log10 sigma, c)")
    ax.set_ylabel(f"mean silent-miss rate over {len(SETS)} sets x 3 parameters")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-heldout", type=int, default=1000)
    parser.add_argument("--n-flag", type=int, default=300,
                        help="held-out maps whose flags are computed (each costs replicates)")
    parser.add_argument("--n-set", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--mmd-weight", type=float, default=1.0)
    parser.add_argument("--augment-noise", type=float, default=0.3)
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--more", type=int, default=0, metavar="N",
                        help="maps per set of a second draw of the sets, pooled with the first")
    parser.add_argument("--more-in-model", type=int, default=300)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    names = args.estimators.split(",")
    paths = banks(args.work, args.n_train, args.n_heldout, args.seed, names)
    sets_ = sets(args.work, args.n_set, args.seed)
    results = {}
    store = args.work / "scores.json"
    done = json.loads(store.read_text()) if store.exists() else {}
    for name in names:
        model = train(name, args.work, paths, sets_, args.epochs, args.mmd_weight,
                      args.augment_noise)
        current(name, model, paths, args.work, done)
        if name not in done:
            start = time.perf_counter()
            done[name] = {"scored_with": SCORED_WITH,
                          "settings": {**{k: str(v) for k, v in vars(args).items()},
                                       "augment_noise": str(noise_of(name, args.augment_noise))},
                          **evaluate(name, model, paths, sets_, args.n_flag, args.draws,
                                     args.seed, args.work)}
            store.write_text(json.dumps(done, indent=1))
            print(f"scored {name}: {time.perf_counter() - start:.0f} s", flush=True)
        results[name] = {"scored_with": "unknown", **done[name]}
    args.results.mkdir(parents=True, exist_ok=True)
    written = args.results / "robustness.json"
    earlier = json.loads(written.read_text()) if written.exists() else {}
    results = {**{k: v for k, v in earlier.get("results", {}).items() if k not in results},
               **results}
    runs = {**earlier.get("settings_by_estimator", {}),
            **{name: results[name].pop("settings") for name in names
               if "settings" in results[name]}}
    written.write_text(json.dumps(
        {"settings_by_estimator": runs, "sets": {
            "in-model": IN_MODEL, "modelled": MODELLED, "beyond": BEYOND},
         "results": results}, indent=1))
    figure(results, args.results / "robustness.png")
    tradeoff(results, args.results / "robustness_tradeoff.png")
    text = table(results)
    (args.results / "robustness_table.md").write_text(text + "\n")
    print(text)
    if args.more:
        more(args, names, done)


if __name__ == "__main__":
    main()
