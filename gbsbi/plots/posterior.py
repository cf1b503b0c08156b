"""Figures of posteriors: a corner plot per scan, and every scan's intervals against temperature.

Axes span the prior's range, so a posterior as wide as its panel is one the map did not
narrow (sigma where c is near 0, for example): that is the answer, not a plotting fault.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gbsbi.io.posteriors import NAMES, QUANTILES, PosteriorDraws, unique_names
from gbsbi.plots import pyplot as _plt
from simulators.config import Prior

LABELS = {"D": "D [nm$^2$/s]", "sigma": r"$\sigma$ [J/m$^2$]", "c": "c"}


def _scaled(values: np.ndarray, name: str) -> np.ndarray:
    return np.log10(values) if name == "sigma" else values


def _limits(prior: Prior) -> list[tuple[float, float]]:
    return [(float(_scaled(np.array(p.low), p.name)), float(_scaled(np.array(p.high), p.name)))
            for p in prior.parameters]


def _label(name: str) -> str:
    return r"log$_{10}$ $\sigma$ [J/m$^2$]" if name == "sigma" else LABELS[name]


def safe_name(scan: str) -> str:
    """A file-name-safe version of a scan name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", scan).strip("_") or "scan"


def corner(
    samples: np.ndarray, prior: Prior, title: str, path: Path, truth: np.ndarray | None = None,
    flagged: str = "",
) -> Path:
    """Corner plot of one scan's draws.

    Args:
        samples: draws of (D, sigma, c), shape (n, 3).
        prior: sets the axes' ranges.
        title: the figure's title.
        path: the PNG to write.
        truth: true (D, sigma, c), shape (3,), marked in red, or None.
        flagged: why the scan is flagged as unlike the simulations ('' where it is not): the
            figure then says its posterior is not to be trusted.
    """
    plt = _plt()
    values = np.stack([_scaled(samples[:, k], n) for k, n in enumerate(NAMES)], axis=1)
    marks = None if truth is None else [float(_scaled(np.array(v), n))
                                        for v, n in zip(truth, NAMES, strict=True)]
    limits = _limits(prior)
    # A fixed layout and only the panels drawn: constrained_layout and the three hidden
    # panels made each of a run's many corner plots twice as slow.
    fig = plt.figure(figsize=(6.4, 6.4))
    grid = fig.add_gridspec(3, 3, left=0.11, right=0.97, bottom=0.09,
                            top=0.84 if flagged else 0.88, wspace=0.08, hspace=0.08)
    for i in range(3):
        for j in range(i + 1):
            ax = fig.add_subplot(grid[i, j])
            if i == j:
                ax.hist(values[:, i], bins=40, range=limits[i], density=True, color="C0",
                        histtype="stepfilled", alpha=0.6)
                low, high = np.quantile(values[:, i], QUANTILES)
                for v in (low, high):
                    ax.axvline(v, color="C0", ls="--", lw=1)
                ax.set_yticks([])
            else:
                ax.hist2d(values[:, j], values[:, i], bins=40, range=[limits[j], limits[i]],
                          cmap="Blues")
                ax.set_ylim(limits[i])
                if marks is not None:
                    ax.plot(marks[j], marks[i], "x", color="C3", ms=8, mew=2)
            ax.set_xlim(limits[j])
            if marks is not None:
                ax.axvline(marks[j], color="C3", lw=1)
            if i == 2:
                ax.set_xlabel(_label(NAMES[j]))
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(_label(NAMES[i]))
            elif j > 0:
                ax.set_yticklabels([])
    if flagged:
        title = f"FLAGGED, NOT TO BE TRUSTED ({flagged})\n{title}"
        fig.patch.set_edgecolor("C3")
        fig.patch.set_linewidth(6)
    fig.suptitle(title + "\n(dashed: 90 % interval" + ("" if truth is None else
                                                     "; red: true value") + ")", fontsize=10,
                 color="C3" if flagged else "black")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def corner_plots(draws: PosteriorDraws, prior: Prior, folder: Path) -> list[Path]:
    """One corner plot per scan into ``folder``, named ``corner_<scan>.png``; none for a scan
    without draws (its posterior outside the prior, docs/inference.md#outside-the-prior)."""
    flat = draws.theta.reshape(-1, *draws.theta.shape[2:])
    paths, empty = [], draws.without_draws
    for k, scan in enumerate(unique_names(draws.scan)):
        if empty[k]:
            continue
        title = f"{scan}: T = {draws.temperature[k]:.0f} K, Phi_corr = {draws.phi_corrected[k]:.2f}"
        truth = None if draws.truth is None else draws.truth[k]
        flagged = ""
        if draws.flagged[k]:
            flagged = (f"misspecification p = {draws.misspecification[k]:.3f}"
                       + (f"; {', '.join(draws.reasons(k))}" if draws.reasons(k) else ""))
        paths.append(corner(flat[:, k], prior, title, folder / f"corner_{safe_name(scan)}.png",
                            truth, flagged))
    return paths


def intervals_plot(draws: PosteriorDraws, prior: Prior, path: Path) -> Path:
    """Posterior median and 90 % interval of each scan against temperature, per group, or
    against the window's age where the maps have ages (the windows of long measurements); flagged
    scans (unlike the simulations) as hollow red markers, not to be trusted.

    The median, not the mean: a skewed posterior (sigma over decades) can have its mean above
    its 95 % quantile, and the marker must sit inside its own interval.
    """
    plt = _plt()
    flat = draws.theta.reshape(-1, *draws.theta.shape[2:])
    low, mid, high = np.quantile(flat, (QUANTILES[0], 0.5, QUANTILES[1]), axis=0)
    groups = np.array([""] * len(draws.scan)) if draws.group is None else draws.group
    names = list(dict.fromkeys(groups))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    aged = draws.age is not None and np.any(draws.age > 0)
    along = np.asarray(draws.age if aged else draws.temperature, dtype=float)
    span = np.ptp(along) or 1.0
    for g, group in enumerate(names):
        pick = np.flatnonzero(groups == group)
        # Repeats at one temperature (age) sit side by side, not on top of each other.
        offsets = np.zeros(len(pick))
        for t in np.unique(along[pick]):
            same = np.flatnonzero(along[pick] == t)
            offsets[same] = (np.arange(len(same)) - (len(same) - 1) / 2) * span * 0.012
        offsets += (g - (len(names) - 1) / 2) * span * 0.004
        bad = draws.flagged[pick]
        for j, ax in enumerate(axes):
            x = along[pick] + offsets
            err = np.stack([mid[pick, j] - low[pick, j], high[pick, j] - mid[pick, j]])
            good = ~bad
            ax.errorbar(x[good], mid[pick, j][good], yerr=err[:, good], fmt="o", ms=3,
                        capsize=2, color=f"C{g}", label=group or None)
            if bad.any():  # flagged scans: hollow red markers, dotted bars
                ax.errorbar(x[bad], mid[pick, j][bad], yerr=err[:, bad], fmt="o", ms=5,
                            mfc="none", mec="C3", ecolor="C3", ls="none", capsize=2,
                            elinewidth=0.8, label="flagged: not to be trusted")
            if draws.truth is not None:
                for value in np.unique(draws.truth[pick, j]):
                    ax.axhline(value, color=f"C{g}", ls="--", lw=1)
    for ax, spec in zip(axes, prior.parameters, strict=True):
        ax.set_ylim(spec.low, spec.high)
        if spec.scale == "log":
            ax.set_yscale("log")
        ax.set_xlabel("window age [s]" if aged else "T [K]")
        ax.set_ylabel(LABELS[spec.name])
    if len(names) > 1 or names[0] or draws.flagged.any():
        handles, labels = axes[0].get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        axes[0].legend(unique.values(), unique.keys(), fontsize=8)
    note = "; dashed: true values" if draws.truth is not None else ""
    fig.suptitle(f"posterior median and 90 % interval per scan{note}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
