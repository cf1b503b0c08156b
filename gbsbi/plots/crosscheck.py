"""Figures of the Phi-only cross-check: the three posteriors of a scan overlaid, and the
C2ST of every scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gbsbi.plots import pyplot as _plt
from gbsbi.plots.check import LABELS

STYLES = {"emcee (Phi only)": "C0", "NPE on (Phi, T)": "C1", "NPE on the map": "C2"}


def overlay_plot(sets: dict[str, np.ndarray], title: str, path: Path, most: int = 600) -> Path:
    """Corner plot of several sets of draws on the prior's scale (D, log10 sigma, c).

    Args:
        sets: label -> draws, shape (n, 3), on the prior's scale.
        title: the figure's title.
        path: the PNG to write.
        most: points per set in the scatter panels.
    """
    plt = _plt()
    fig, axes = plt.subplots(3, 3, figsize=(7, 7), constrained_layout=True)
    limits = [(min(s[:, k].min() for s in sets.values()), max(s[:, k].max()
                                                             for s in sets.values()))
              for k in range(3)]
    for i in range(3):
        for j in range(3):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            for label, draws in sets.items():
                color = STYLES.get(label, "C3")
                if i == j:
                    ax.hist(draws[:, i], bins=40, range=limits[i], density=True,
                            histtype="step", color=color, label=label, lw=1.5)
                else:
                    pick = np.linspace(0, len(draws) - 1, min(most, len(draws))).astype(int)
                    ax.plot(draws[pick, j], draws[pick, i], ".", ms=1.5, color=color,
                            alpha=0.4)
            ax.set_xlim(limits[j])
            if i != j:
                ax.set_ylim(limits[i])
            else:
                ax.set_yticks([])
            if i == 2:
                ax.set_xlabel(LABELS[j])
            if j == 0 and i > 0:
                ax.set_ylabel(LABELS[i])
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.05, 1.0))
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def c2st_plot(names: list[str], emcee_vs_npe: list[float], map_vs_phi: list[float],
              path: Path) -> Path:
    """C2ST per scan: emcee against the Phi-only NPE, and the map NPE against the Phi-only."""
    plt = _plt()
    k = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 2), 3.6),
                           constrained_layout=True)
    ax.bar(k - 0.2, emcee_vs_npe, 0.4, label="emcee vs NPE on (Phi, T): agreement")
    ax.bar(k + 0.2, map_vs_phi, 0.4, label="map NPE vs Phi-only NPE: what the map adds")
    ax.axhline(0.5, color="0.3", ls="--", lw=1)
    ax.set_ylim(0.4, 1.0)
    ax.set_xticks(k, names, rotation=70, fontsize=7)
    ax.set_ylabel("C2ST accuracy (0.5: same)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
