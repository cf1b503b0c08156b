"""Figure of the per-scan misspecification test: each scan's log-density of f(x) against the
reference simulations' log-densities."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gbsbi.plots import pyplot as _plt


def misspec_plot(reference: np.ndarray, scans: np.ndarray, names: np.ndarray,
                 flags: np.ndarray, alpha: float, path: Path, most: int = 40) -> Path:
    """Histogram of the reference log p(f) with the flag's threshold, and the scans as ticks,
    red where flagged (by the same rule as everywhere: p < alpha).

    Args:
        reference: log p(f) of the reference simulations, shape (m,).
        scans: log p(f) of the scans, shape (n,); -inf is drawn at the left edge.
        names: scan names, shape (n,); the ``most`` lowest are labelled.
        flags: whether each scan is flagged (p < alpha), shape (n,).
        alpha: the flag level.
        path: the PNG to write.
    """
    plt = _plt()
    finite = reference[np.isfinite(reference)]
    flags = np.asarray(flags, dtype=bool)
    # p < alpha exactly when log p(f) lies below the ceil(alpha m)-th smallest reference value
    cut = np.sort(reference)[min(len(reference), max(1, int(np.ceil(alpha * len(reference)))))
                             - 1]
    low = min(finite.min(), np.min(scans[np.isfinite(scans)], initial=finite.min()))
    shown = np.where(np.isfinite(scans), scans, low)
    fig, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    ax.hist(finite, bins=50, color="0.7", label="held-out simulations")
    ax.axvline(cut, color="C3", ls="--", label=f"flagged below (p < {alpha:g})")
    for k in np.argsort(shown)[:most]:
        color = "C3" if flags[k] else "C0"
        ax.axvline(shown[k], ymax=0.25, color=color, lw=1.5)
    order = np.argsort(shown)[: min(5, len(shown))]
    for j, k in enumerate(order):
        ax.annotate(str(names[k]), (shown[k], 0), xytext=(0, 12 + 10 * j),
                    textcoords="offset points", fontsize=7, rotation=0,
                    color="C3" if flags[k] else "C0")
    ax.set_xlabel("log density of the embedding f(x)")
    ax.set_ylabel("simulations")
    ax.set_title(f"{int(flags.sum())} of {len(shown)} scans flagged (p < {alpha:g})",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
