"""Validation of the fast noise model and of the noise-corrected Phi against the exact model.

1. Grid nbar in {0.01, 0.03, 0.1, 0.3, 1} counts per pixel per frame x N_pix in {1e3, 1e4, 1e5},
   64 frames over the default 2,000 s window, beta = 0.2, on two GB-model maps (Phi near 0.05 and
   near 0.4): per-element variance of the estimator, fast / exact (the median over elements and
   maps of the per-element ratio, both from the same number of replicates so that the median of
   their ratio is unbiased; and the pooled ratio, mean variance over elements, with 20x more
   fast replicates), the delta-method formula / exact, and the plain Phi's distribution under
   fast and exact noise (KS statistic and p-value, difference of medians, ratio of spreads).
2. Noise-corrected Phi at 0.05 counts and 20,000 pixels, 128 frames (the default), on maps drawn
   from the default prior: median |Phi - Phi_noiseless| for the plain, corrected (map only),
   corrected with the known variance, and split-half Phi; the same under fast noise.
3. Speed: fast noise against noiseless map generation, and the exact model per map.

Writes studies/results/noise_model_validation.{csv,md,png}. About 5 minutes on 2 cores.

Usage: python studies/validate_noise_model.py [--reps 12] [--n-phi 120] [--frames 64]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp

from gbsbi.summaries.phi import phi
from gbsbi.summaries.phi_noise import phi_corrected
from simulators.config import ExperimentConfig, Prior
from simulators.gb import scattering_function, two_time_maps
from simulators.measurement import MeasurementConfig, measure
from simulators.noise import estimator_variance, noisy_maps

COUNTS = (0.01, 0.03, 0.1, 0.3, 1.0)
PIXELS = (1_000, 10_000, 100_000)
BETA = 0.2
RESULTS = Path(__file__).parent / "results"


def off_diagonal(C: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(C.shape[-1], k=1)
    return C[..., i, j]


def signal_maps(frames: int, targets: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """F of GB-model maps from the default prior whose noiseless Phi is nearest each target."""
    config = ExperimentConfig(n_frames=frames)
    theta, temperature = Prior().sample(200, rng)
    F = scattering_function(theta, temperature, config, rng).astype(np.complex128)
    p = phi(1 + BETA * np.abs(F) ** 2)
    return F[[int(np.argmin(np.abs(p - t))) for t in targets]]


def replicates(n_pix: int, reps: int) -> int:
    """Exact replicates per map: ``reps`` at 1e5 pixels, more where they are cheap."""
    return int(round(reps * np.sqrt(1e5 / n_pix)))


def lag_bands(T: int) -> list[np.ndarray]:
    """Masks over the pairs i < j for lags 1-4, 5-16 and 17 and beyond."""
    lags = off_diagonal(np.subtract.outer(np.arange(T), np.arange(T)).T)
    return [(lags >= lo) & (lags < hi) for lo, hi in ((1, 5), (5, 17), (17, T))]


def grid_point(F: np.ndarray, nbar: float, n_pix: int, reps: int, rng: np.random.Generator):
    """Exact and fast replicates of each map; returns one row of the table and plot data."""
    T = F.shape[-1]
    C0 = 1 + BETA * np.abs(F) ** 2
    config = MeasurementConfig(nbar=nbar, n_pix=n_pix, beta=BETA)
    reps = replicates(n_pix, reps)
    row = {"nbar": nbar, "n_pix": n_pix, "reps": reps}
    ratios, pooled, bands, formula, ks, dmed, spread, nan_frac = [], [], [], [], [], [], [], []
    profiles = []
    for f, c0 in zip(F, C0, strict=True):
        exact = measure(np.broadcast_to(f, (reps, T, T)), config, rng).C
        fast_same = noisy_maps(np.broadcast_to(c0, (reps, T, T)), nbar, n_pix, BETA, rng)
        fast_many = noisy_maps(np.broadcast_to(c0, (20 * reps, T, T)), nbar, n_pix, BETA, rng)
        v_exact = off_diagonal(np.nanvar(exact, axis=0, ddof=1))
        v_same = off_diagonal(np.nanvar(fast_same.astype(np.float64), axis=0, ddof=1))
        v_many = off_diagonal(np.nanvar(fast_many.astype(np.float64), axis=0, ddof=1))
        v_formula = off_diagonal(estimator_variance(c0, nbar, n_pix, BETA))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(v_same / v_exact)
        pooled.append(np.mean(v_many) / np.mean(v_exact))
        bands += [np.mean(v_many[b]) / np.mean(v_exact[b]) for b in lag_bands(T)]
        formula.append(np.mean(v_formula) / np.mean(v_exact))
        p_exact, p_fast = phi(exact), phi(fast_many)
        ks.append(ks_2samp(p_exact[np.isfinite(p_exact)], p_fast[np.isfinite(p_fast)]))
        dmed.append(np.nanmedian(p_fast) - np.nanmedian(p_exact))
        spread.append(np.nanstd(p_fast) / max(np.nanstd(p_exact), 1e-12))
        nan_frac.append((np.isnan(exact).mean(), np.isnan(fast_many).mean()))
        profiles.append((v_exact, v_many, v_formula, p_exact, p_fast))
    row.update(
        median_ratio=float(np.nanmedian(np.concatenate(ratios))),
        pooled_ratio_min=float(min(pooled)),
        pooled_ratio_max=float(max(pooled)),
        band_ratio_min=float(min(bands)),
        band_ratio_max=float(max(bands)),
        formula_ratio_min=float(min(formula)),
        formula_ratio_max=float(max(formula)),
        ks_max=float(max(k.statistic for k in ks)),
        ks_p_min=float(min(k.pvalue for k in ks)),
        dmedian_phi_max=float(max(np.abs(dmed))),
        sd_ratio_min=float(min(spread)),
        sd_ratio_max=float(max(spread)),
        nan_exact=float(max(n[0] for n in nan_frac)),
        nan_fast=float(max(n[1] for n in nan_frac)),
    )
    return row, profiles


def phi_correction(n_maps: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Errors of the Phi estimators at 0.05 counts and 20,000 pixels, 128 frames."""
    config = ExperimentConfig()
    theta, temperature = Prior().sample(n_maps, rng)
    F = scattering_function(theta, temperature, config, rng).astype(np.complex128)
    C0 = 1 + BETA * np.abs(F) ** 2
    p0 = phi(C0)
    m = measure(F, MeasurementConfig(nbar=0.05, n_pix=20_000, beta=BETA), rng)
    fast = noisy_maps(C0, 0.05, 20_000, BETA, rng, halves=True)
    known = estimator_variance(C0, 0.05, 20_000, BETA)
    est = {
        "plain (exact noise)": phi(m.C),
        "corrected (exact noise)": phi_corrected(m.C),
        "corrected, known variance (exact noise)": phi_corrected(m.C, noise_var=known),
        "split-half (exact noise)": phi(m.C_a, m.C_b),
        "plain (fast noise)": phi(fast[0]),
        "corrected (fast noise)": phi_corrected(fast[0]),
        "split-half (fast noise)": phi(fast[1], fast[2]),
    }
    quartile = np.searchsorted(np.quantile(p0, [0.25, 0.5, 0.75]), p0)
    table = {}
    for name, value in est.items():
        err = np.nan_to_num(np.abs(value - p0), nan=1.0)  # NaN (flat map) counts as error 1
        table[name] = {
            "median": float(np.median(err)),
            "q90": float(np.quantile(err, 0.9)),
            "bias": float(np.nanmedian(value - p0)),
            "nan": int(np.isnan(value).sum()),
            **{f"median Q{q + 1}": float(np.median(err[quartile == q])) for q in range(4)},
        }
    return table, {"p0": p0, **est}


def timing(n: int) -> dict:
    """Seconds per map: noiseless maps (gb), fast noise on them, and the exact model."""
    config, prior = ExperimentConfig(), Prior()
    rng = np.random.default_rng(5)
    theta, temperature = prior.sample(n, rng)
    two_time_maps(theta[:32], temperature[:32], config, rng)  # warm-up
    noiseless, fast = [], []
    for _ in range(3):  # best of three: the machine is shared
        start = time.perf_counter()
        maps = [
            two_time_maps(theta[i : i + 250], temperature[i : i + 250], config, rng)
            for i in range(0, n, 250)
        ]
        noiseless.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        for C0 in maps:
            noisy_maps(C0, 0.05, 20_000, BETA, rng)
        fast.append((time.perf_counter() - start) / n)
    F = scattering_function(theta[:4], temperature[:4], config, rng)
    start = time.perf_counter()
    measure(F, MeasurementConfig(nbar=0.05, n_pix=20_000, beta=BETA), rng)
    exact = (time.perf_counter() - start) / 4
    return {"noiseless": min(noiseless), "fast": min(fast), "exact (20,000 px)": exact}


def write_outputs(rows, profiles, correction, phis, times, args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    with open(RESULTS / "noise_model_validation.csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(f"{r[k]:.6g}" for k in keys) + "\n")
    lines = [
        "# Fast noise model and noise-corrected Phi: validation against the exact model",
        "",
        f"Grid: {args.frames} frames, beta = {BETA}, 2 GB-model maps (Phi near 0.05 and 0.4); "
        "per map and point, R exact replicates (R = reps x sqrt(1e5 / N_pix)), R fast ones for "
        "the median per-element ratio (equal R keeps the median of the ratio unbiased for "
        "continuous estimates) and 20 R fast ones for the pooled ratio (mean variance over the "
        "elements), the lag bands (1-4, 5-16, 17+) and the Phi distribution. Ranges are over "
        "the two maps (and the three bands).",
        "",
        "| nbar | N_pix | exact reps | median elem. var ratio fast/exact | pooled ratio "
        "fast/exact | lag-band ratios | formula/exact | KS max (p min) | max abs. d median Phi "
        "| sd ratio fast/exact |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['nbar']} | {r['n_pix']} | {r['reps']} | {r['median_ratio']:.3f} | "
            f"{r['pooled_ratio_min']:.3f}-{r['pooled_ratio_max']:.3f} | "
            f"{r['band_ratio_min']:.3f}-{r['band_ratio_max']:.3f} | "
            f"{r['formula_ratio_min']:.3f}-{r['formula_ratio_max']:.3f} | "
            f"{r['ks_max']:.2f} ({r['ks_p_min']:.2g}) | {r['dmedian_phi_max']:.4f} | "
            f"{r['sd_ratio_min']:.2f}-{r['sd_ratio_max']:.2f} |"
        )
    worst = max(max(abs(r["pooled_ratio_min"] - 1), abs(r["pooled_ratio_max"] - 1)) for r in rows)
    bands = max(max(abs(r["band_ratio_min"] - 1), abs(r["band_ratio_max"] - 1)) for r in rows)
    p_min = min(r["ks_p_min"] for r in rows)
    d_max = max(r["dmedian_phi_max"] for r in rows)
    alpha = 0.05 / (2 * len(rows))
    lines += [
        "",
        "Tolerances: per-element variance fast / exact within 15 % (the issue): largest "
        f"deviation of the pooled ratio {worst:.3f}, of a lag band {bands:.3f} "
        f"({'pass' if max(worst, bands) <= 0.15 else 'FAIL'}). Phi distributions: every KS "
        f"p-value above {alpha:.2g} (5 % family-wise over {2 * len(rows)} comparisons, "
        f"Bonferroni) and every |d median| <= 0.01: smallest p {p_min:.2g}, largest |d median| "
        f"{d_max:.4f} ({'pass' if p_min >= alpha and d_max <= 0.01 else 'FAIL'}). The median "
        "per-element ratio is unreliable where an element collects under one photon pair per "
        "replicate (nbar = 0.01, N_pix = 1e3: 0.1 pairs): there the exact estimate's per-element "
        "variance is itself mostly zero or one count.",
        "",
        f"## Phi at 0.05 counts, 20,000 pixels, 128 frames ({args.n_phi} prior maps)",
        "",
        "Error = |Phi - Phi_noiseless|; NaN (map variance below the noise) counts as 1. "
        "Criterion (issue): median error of the noise-robust Phi <= 0.05.",
        "",
        "| estimator | median | 90 % | median bias | NaN | median by Phi_noiseless quartile |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in correction.items():
        by_q = ", ".join(f"{t[f'median Q{q}']:.3f}" for q in range(1, 5))
        lines.append(
            f"| {name} | {t['median']:.4f} | {t['q90']:.3f} | {t['bias']:+.4f} | {t['nan']} "
            f"| {by_q} |"
        )
    lines += [
        "",
        "## Speed (ms per map, 128 frames, best of 3)",
        "",
        *(f"- {k}: {1e3 * v:.3f} ms" for k, v in times.items()),
        f"- fast / noiseless: {times['fast'] / times['noiseless']:.2f}",
        "",
    ]
    (RESULTS / "noise_model_validation.md").write_text("\n".join(lines))
    print("\n".join(lines))
    plot(rows, profiles, phis)


def plot(rows, profiles, phis) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 9))
    grid = np.array([[r["median_ratio"] for r in rows if r["n_pix"] == n] for n in PIXELS])
    im = ax[0, 0].imshow(grid, vmin=0.85, vmax=1.15, cmap="RdBu_r", origin="lower")
    for (i, j), v in np.ndenumerate(grid):
        ax[0, 0].text(j, i, f"{v:.3f}", ha="center", va="center")
    ax[0, 0].set(
        xticks=range(len(COUNTS)),
        xticklabels=COUNTS,
        yticks=range(len(PIXELS)),
        yticklabels=PIXELS,
        xlabel="nbar (counts / pixel / frame)",
        ylabel="N_pix",
        title="per-element variance, fast / exact (median)",
    )
    fig.colorbar(im, ax=ax[0, 0])
    key = next(k for k, r in enumerate(rows) if r["nbar"] == 0.1 and r["n_pix"] == 10_000)
    v_exact, v_many, v_formula, p_exact, p_fast = profiles[key][1]
    T = int(round((1 + np.sqrt(1 + 8 * v_exact.size)) / 2))
    lags = off_diagonal(np.subtract.outer(np.arange(T), np.arange(T)).T)
    for v, label in ((v_exact, "exact"), (v_many, "fast"), (v_formula, "formula")):
        ax[0, 1].plot(
            np.arange(1, T), np.bincount(lags, v)[1:] / np.bincount(lags)[1:], label=label
        )
    ax[0, 1].set(
        xlabel="lag (frames)",
        ylabel="var C, mean over the diagonal",
        title="nbar = 0.1, N_pix = 1e4, high-Phi map",
    )
    ax[0, 1].legend()
    bins = np.linspace(min(p_exact.min(), p_fast.min()), max(p_exact.max(), p_fast.max()), 25)
    ax[1, 0].hist(p_exact, bins, density=True, alpha=0.5, label="exact noise")
    ax[1, 0].hist(p_fast, bins, density=True, alpha=0.5, label="fast noise")
    ax[1, 0].set(xlabel="plain Phi", title="Phi under noise, same map and point")
    ax[1, 0].legend()
    p0 = phis["p0"]
    for name, marker in (
        ("plain (exact noise)", "x"),
        ("split-half (exact noise)", "+"),
        ("corrected (exact noise)", "o"),
    ):
        ax[1, 1].scatter(p0, phis[name], s=12, marker=marker, label=name)
    ax[1, 1].plot([0, 1], [0, 1], "k:", lw=1)
    ax[1, 1].set(
        xlabel="Phi noiseless",
        ylabel="Phi estimate",
        xlim=(0, 1),
        ylim=(-0.2, 1.05),
        title="0.05 counts, 20,000 pixels, 128 frames",
    )
    ax[1, 1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "noise_model_validation.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12, help="exact replicates per map and point")
    parser.add_argument("--n-phi", type=int, default=120, help="maps for the Phi correction")
    parser.add_argument("--frames", type=int, default=64, help="frames of the variance grid")
    parser.add_argument("--n-time", type=int, default=1000, help="maps for the timing")
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    start = time.perf_counter()
    F = signal_maps(args.frames, (0.05, 0.4), rng)
    rows, profiles = [], []
    for n_pix in PIXELS:
        for nbar in COUNTS:
            row, prof = grid_point(F, nbar, n_pix, args.reps, rng)
            rows.append(row)
            profiles.append(prof)
            print(f"{time.perf_counter() - start:6.0f} s  {row}", flush=True)
    correction, phis = phi_correction(args.n_phi, rng)
    times = timing(args.n_time)
    write_outputs(rows, profiles, correction, phis, times, args)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
