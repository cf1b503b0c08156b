"""Are group posteriors calibrated? Simulated temperature series with known (D_ref, Ea, sigma, c).

Each of ``--groups`` groups draws its parameters from the group prior of `gbsbi group --law
arrhenius --shared sigma,c` (D_ref, Ea uniform, restricted to those that keep every scan's D
inside the per-scan prior; sigma and c from the per-scan prior) and 3 to 8 temperatures
uniform in [300, 500] K; each scan is simulated as measured (the fast noise model, nuisances
from the configuration's ranges: maps of the model's bank). For every group and parameter:
whether the 90 % interval covers the truth, the SBC rank of the truth, and the posterior
median's error; against the naive baseline (least squares of ln of the per-scan posterior-mean
D against 1/T; sigma and c the mean of the per-scan means). Writes
studies/results/group_calibration.md, .json and .png.

Each group's record is appended to ``--records`` (JSON lines) as it finishes, so an
interrupted run keeps its groups and a rerun continues after them; runs with other seeds (one
per core) write their own files, and ``--summarise FILE ...`` pools them into the results.

Usage: python studies/group_calibration.py --model MODEL_DIR [--groups 200] [--seed 0]
       [--members K] [--records FILE]
       python studies/group_calibration.py --summarise FILE [FILE ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from gbsbi.group.config import GroupPrior, GroupSettings
from gbsbi.group.law import K_B_EV, GroupModel
from gbsbi.group.sample import sample_group
from gbsbi.inference.inputs import network_inputs
from gbsbi.inference.model import load_model
from gbsbi.inference.npe.likelihood import scan_log_likelihood
from gbsbi.inference.npe.predict import posterior_draws
from gbsbi.validation.calibration import LEVEL, ranks
from simulators.config import MeasurementPrior, SamplePrior
from simulators.measured import measured_maps

RESULTS = Path(__file__).parent / "results"
PARAMS = ("D_ref", "Ea", "sigma", "c")


def draw_group(model, prior: GroupPrior, rng: np.random.Generator,  # noqa: ANN001
               scans: int | None = None) -> dict:
    """One group's truth and temperatures (rejection from the group prior's support), of
    ``scans`` scans (default 3 to 8, uniform)."""
    spec = model.spec
    n = int(rng.integers(3, 9)) if scans is None else scans
    temperature = np.sort(rng.uniform(300, 500, n))
    law = GroupModel(temperature, "arrhenius", ("sigma", "c"), spec.prior, prior)
    while True:
        z = rng.random((1, law.dim))
        if law.inside(z)[0]:
            break
    values = law.physical(z)
    return {"temperature": temperature, "z": z[0], "law": law,
            "truth": {k: float(values[k][0]) for k in PARAMS},
            "theta": np.stack([values["D_scan"][0], np.full(n, values["sigma"][0]),
                               np.full(n, values["c"][0])], axis=1)}


def simulate(model, group: dict, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
    """The group's maps as the bank was simulated (fast noise, nuisances from the ranges)."""
    spec = model.spec
    n = len(group["temperature"])
    nuisance = MeasurementPrior.sample(spec.nuisance, n, rng)
    if not spec.sample.single:
        nuisance |= SamplePrior.sample(spec.sample, n, rng)
    return measured_maps(group["theta"], group["temperature"], spec.experiment, nuisance,
                         "fast", spec.nuisance, rng, halves=False)["C"]


def naive(model, x: np.ndarray, temperature: np.ndarray, t_ref: float,  # noqa: ANN001
          seed: int) -> dict:
    """Least squares of ln(posterior-mean D) against 1/T; sigma and c: mean of the means."""
    theta = posterior_draws(model, x, 500, seed).mean(axis=0)  # (n, 3)
    slope, intercept = np.polyfit(1 / temperature, np.log(theta[:, 0]), 1)
    return {"D_ref": float(np.exp(intercept + slope / t_ref)), "Ea": float(-slope * K_B_EV),
            "sigma": float(theta[:, 1].mean()), "c": float(theta[:, 2].mean())}


def scale(name: str, value: np.ndarray) -> np.ndarray:
    """The scale errors are measured on: log10 for sigma."""
    return np.log10(value) if name == "sigma" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temper", type=float, default=GroupSettings.temper,
                        help="power of each scan's likelihood in the product (default that of "
                        "gbsbi group; 1: the plain product); with --summarise, that of records "
                        "which do not carry it")
    parser.add_argument("--members", type=int, default=0,
                        help="mix only the first K members of an ensemble in the likelihood "
                        "(default 0: all; gbsbi group --members)")
    parser.add_argument("--records", type=Path, help="JSON lines, one group each (appended)")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="FILE",
                        help="pool these record files into the results; nothing is sampled")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.summarise:
        summarise(read_records(args.summarise), args)
        return
    if args.model is None:
        parser.error("--model is required unless --summarise")
    model = load_model(args.model)
    path = args.records or args.results / f"group_calibration_seed{args.seed}.jsonl"
    done = len(path.read_text().splitlines()) if path.exists() else 0
    prior, settings = GroupPrior(), GroupSettings(draws=args.draws, seed=args.seed,
                                                  temper=args.temper, members=args.members)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for g in range(args.groups):
        group = draw_group(model, prior, rng)
        C = simulate(model, group, rng)
        if g < done:  # drawn again to keep the random stream, sampled before
            continue
        x = network_inputs(C, group["temperature"], model.spec.inputs)
        began = time.perf_counter()
        draws = sample_group(group["law"], scan_log_likelihood(model, x, settings.members),
                             settings)
        seconds = time.perf_counter() - began
        values = group["law"].physical(draws.z.reshape(-1, group["law"].dim))
        record = {"n": len(x), "temper": settings.temper, "members": settings.members,
                  "seconds": seconds, "steps": draws.steps,
                  "rhat_max": float(np.nanmax(draws.rhat)), "truth": group["truth"],
                  "naive": naive(model, x, group["temperature"], prior.t_ref, args.seed)}
        for name in PARAMS:
            sample = scale(name, values[name])
            truth = scale(name, np.array(group["truth"][name]))
            low, high = np.quantile(sample, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
            record[name] = {"median": float(np.median(sample)), "low": float(low),
                            "high": float(high), "covered": bool(low <= truth <= high),
                            "rank": float(ranks(sample[:, None, None], truth[None, None])[0, 0])}
        with path.open("a") as out:
            out.write(json.dumps(record) + "\n")
        print(f"group {g + 1}/{args.groups} ({len(x)} scans): {seconds:.0f} s, "
              f"{draws.steps} steps; {time.perf_counter() - start:.0f} s in all", flush=True)
    summarise(read_records([path]), args)


def read_records(paths: list[Path]) -> list[dict]:
    """The groups' records of these JSON-lines files, pooled."""
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()
            if line.strip()]


#: Bins of the true Ea [eV] for the coverage against it.
EA_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 1.01))


def summarise(records: list[dict], args: argparse.Namespace) -> None:
    from scipy import stats

    from gbsbi.plots import pyplot

    n = len(records)
    tempers = {r.get("temper", args.temper) for r in records}
    if len(tempers) > 1:
        raise SystemExit(f"the records mix tempers {sorted(tempers)}: summarise each apart")
    args.temper = tempers.pop()
    counts = {r.get("members", 0) for r in records}  # records before the option: every member
    if len(counts) > 1:
        raise SystemExit(f"the records mix --members {sorted(counts)}: summarise each apart")
    args.members = counts.pop()
    table = {}
    for name in PARAMS:
        truth = np.array([scale(name, np.array(r["truth"][name])) for r in records])
        median = np.array([r[name]["median"] for r in records])
        base = np.array([scale(name, np.array(r["naive"][name])) for r in records])
        rank = np.array([r[name]["rank"] for r in records])
        table[name] = {
            "coverage_90": float(np.mean([r[name]["covered"] for r in records])),
            "binomial_sd": float(np.sqrt(0.09 / n)),
            "sbc_ks_p": float(stats.kstest(rank, "uniform").pvalue),
            "rmse_group": float(np.sqrt(np.mean((median - truth) ** 2))),
            "rmse_naive": float(np.sqrt(np.mean((base - truth) ** 2))),
        }
    seconds = np.array([r["seconds"] for r in records])
    eight = seconds[[r["n"] == 8 for r in records]]
    summary = {"groups": n, "table": table, "seconds_median": float(np.median(seconds)),
               "seconds_8_scans_max": float(eight.max()) if len(eight) else None,
               "seconds_8_scans_median": float(np.median(eight)) if len(eight) else None,
               "rhat_max": float(max(r["rhat_max"] for r in records))}
    # Coverage against the true Ea: the groups of a large Ea reach the edges of the per-scan
    # prior of D (tiny D at the coldest scans, the largest at the hottest).
    true_ea = np.array([r["truth"]["Ea"] for r in records])
    covered = {name: np.array([r[name]["covered"] for r in records]) for name in PARAMS}
    summary["coverage_by_true_ea"] = []
    for low, high in EA_BINS:
        pick = (true_ea >= low) & (true_ea < high)
        summary["coverage_by_true_ea"].append(
            {"ea": [low, high], "groups": int(pick.sum()),
             **{name: float(c[pick].mean()) if pick.any() else None
                for name, c in covered.items()}})
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "group_calibration.json").write_text(json.dumps(
        {"settings": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
         "groups": records}, indent=1))
    lines = ["| parameter | 90 % coverage | SBC KS p | RMSE group posterior | RMSE naive | "
             "ratio |", "| --- | --- | --- | --- | --- | --- |"]
    for name, t in table.items():
        label = "log10 sigma" if name == "sigma" else name
        lines.append(f"| {label} | {t['coverage_90']:.3f} | {t['sbc_ks_p']:.3f} | "
                     f"{t['rmse_group']:.3g} | {t['rmse_naive']:.3g} | "
                     f"{t['rmse_group'] / t['rmse_naive']:.2f} |")
    lines += ["", "| true Ea [eV] | groups | " + " | ".join(PARAMS) + " |",
              "| --- | --- |" + " --- |" * len(PARAMS)]
    for row in summary["coverage_by_true_ea"]:
        lines.append(f"| {row['ea'][0]:g}-{row['ea'][1]:g} | {row['groups']} | " + " | ".join(
            "-" if row[name] is None else f"{row[name]:.2f}" for name in PARAMS) + " |")
    text = "\n".join(lines)
    (args.results / "group_calibration_table.md").write_text(text + "\n")
    print(text)
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}))
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), constrained_layout=True)
    for ax, name in zip(axes, PARAMS, strict=True):
        rank = np.array([r[name]["rank"] for r in records])
        ax.hist(rank, bins=10, range=(0, 1), color="C0", alpha=0.7)
        ax.axhline(n / 10, color="0.4", ls="--")
        ax.set_title(f"{name}: coverage {table[name]['coverage_90']:.2f}", fontsize=10)
        ax.set_xlabel("rank of the truth")
    fig.suptitle(f"group posteriors of {n} simulated temperature series: SBC ranks",
                 fontsize=10)
    fig.savefig(args.results / "group_calibration.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
