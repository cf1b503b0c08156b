"""Figures of a calibration check (``gbsbi check``), from the numbers of its JSON.

Bands are the central 95 % of what n calibrated simulations would give: the binomial
quantiles of Bin(n, alpha) / n for a coverage at level alpha, of Bin(n, 1 / bins) for a rank
histogram's bin, and of Bin(n, z) / n - z for the ECDF difference at z (pointwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gbsbi.plots import pyplot as _plt
from gbsbi.plots import save
from gbsbi.validation.calibration import binomial_band, ks_halfwidth, ks_pvalue, sbc_bins

LABELS = ("D [nm$^2$/s]", r"log$_{10}$ $\sigma$ [J/m$^2$]", "c")


def coverage_plot(result: dict, path: Path) -> Path:
    """Central coverage per parameter and joint highest-density coverage against the level."""
    plt = _plt()
    levels = np.asarray(result["levels"])
    grid = np.linspace(0, 1, 101)
    band = binomial_band(grid, result["n"])
    curves = [*result["central_coverage"], result["hpd_coverage"]]
    titles = [f"central, {label}" for label in LABELS] + ["joint highest density"]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), constrained_layout=True)
    for ax, curve, title in zip(axes, curves, titles, strict=True):
        ax.fill_between(grid, band[0], band[1], color="0.85", label="95 % binomial band")
        ax.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--")
        ax.plot(levels, curve, "o-", ms=3, color="C0", label="expected coverage")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("credibility level")
    axes[0].set_ylabel("fraction of simulations covered")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"expected coverage, {result['n']} simulations x {result['draws']} draws "
                 "(above the diagonal: conservative, below: overconfident)", fontsize=10)
    return save(fig, path)


def sbc_plot(ranks: np.ndarray, draws: int, path: Path, bins: int | None = None) -> Path:
    """Rank histograms and ECDF differences of SBC ranks (shape (n, 3), 0 ... draws).

    Histograms have about 10 simulations expected per bin (:func:`sbc_bins`), with the
    binomial 95 % band of one bin; the ECDF differences have the simultaneous 95 % KS band,
    which the whole curve of a calibrated posterior stays inside with probability 0.95 (the
    title's p-values are the same test's)."""
    plt = _plt()
    n = len(ranks)
    bins = bins or sbc_bins(n)
    z = np.linspace(0, 1, 201)
    hist_band = binomial_band(np.array([1 / bins]), n)[:, 0] * n
    d = ks_halfwidth(n)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6), constrained_layout=True)
    for k in range(3):
        r = ranks[:, k] / draws
        ecdf = (r[None, :] <= z[:, None]).mean(1)
        ax = axes[0, k]
        ax.axhspan(*hist_band, color="0.85")
        ax.axhline(n / bins, color="0.4", lw=1, ls="--")
        counts, _, _ = ax.hist(r, bins=bins, range=(0, 1), color="C0", alpha=0.7)
        ax.set_ylim(0, 1.25 * max(hist_band[1], counts.max()))
        ax.set_title(LABELS[k], fontsize=10)
        ax.set_xlabel("normalised rank")
        ax = axes[1, k]
        ax.fill_between(z, np.maximum(-d, -z), np.minimum(d, 1 - z), color="0.85")
        ax.axhline(0, color="0.4", lw=1, ls="--")
        ax.plot(z, ecdf - z, color="C0")
        ax.set_ylim(-1.6 * d, 1.6 * d)
        ax.set_title(f"KS p = {ks_pvalue(ecdf, z, n):.2f}", fontsize=9)
        ax.set_xlabel("normalised rank z")
    axes[0, 0].set_ylabel(f"simulations per bin ({bins} bins)")
    axes[1, 0].set_ylabel("ECDF(z) - z")
    fig.suptitle(f"SBC ranks (sbi run_sbc) of {n} simulations; grey: 95 % band of a calibrated "
                 "posterior (top: per bin; bottom: for the whole curve)", fontsize=10)
    return save(fig, path)


def tarp_plot(result: dict, path: Path) -> Path:
    """TARP's expected coverage probability against the credibility level, with the
    simultaneous 95 % KS band and the same test's p-value (the ECP curve is the ECDF of the n
    simulations' TARP credibilities, uniform for a calibrated posterior): the curve leaves the
    band exactly when p < 0.05."""
    plt = _plt()
    tarp, n = result["tarp"], result["n"]
    alpha, ecp = np.asarray(tarp["alpha"]), np.asarray(tarp["ecp"])
    d = ks_halfwidth(n)
    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(4.4, 4.2), constrained_layout=True)
    ax.fill_between(grid, np.maximum(grid - d, 0), np.minimum(grid + d, 1), color="0.85",
                    label="95 % band")
    ax.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--")
    ax.plot(alpha, ecp, color="C1", label="TARP")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"TARP: ATC {tarp['atc']:+.3f}, KS p {ks_pvalue(ecp, alpha, n):.2f}",
                 fontsize=10)
    return save(fig, path)


def predicted_plot(truth: np.ndarray, centre: np.ndarray, low: np.ndarray, high: np.ndarray,
                   r2: list[float], path: Path, most: int = 300) -> Path:
    """Posterior median and 90 % interval against the true value, per parameter (R^2 is the
    posterior mean's)."""
    plt = _plt()
    pick = np.linspace(0, len(truth) - 1, min(most, len(truth))).astype(int)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for k, ax in enumerate(axes):
        t, m, lo, hi = truth[pick, k], centre[pick, k], low[pick, k], high[pick, k]
        inside = (t >= lo) & (t <= hi)
        for mask, color in ((inside, "C0"), (~inside, "C3")):
            ax.vlines(t[mask], lo[mask], hi[mask], color=color, lw=0.5, alpha=0.6)
            ax.plot(t[mask], m[mask], "o", ms=2, color=color, alpha=0.6)
        span = [min(truth[:, k].min(), low[:, k].min()), max(truth[:, k].max(),
                                                              high[:, k].max())]
        ax.plot(span, span, color="0.3", lw=1)
        ax.set_xlabel(f"true {LABELS[k]}")
        ax.set_ylabel("posterior median, 90 % interval")
        ax.set_title(f"{LABELS[k]}: R$^2$ of the mean = {r2[k]:.3f}", fontsize=10)
    fig.suptitle(f"{len(pick)} of {len(truth)} simulations; red: interval misses the truth",
                 fontsize=10)
    return save(fig, path)


