"""Figures of feature maps: simulated and experimental maps' UMAP coordinates, by domain."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gbsbi.plots import pyplot as _plt


def draw_domains(ax, coords: np.ndarray, simulated: np.ndarray,  # noqa: ANN001 - an Axes
                 groups: np.ndarray | None, title: str) -> None:
    """Simulated maps as grey dots, experimental maps on top, coloured by group if known.

    Args:
        ax: matplotlib axes.
        coords: UMAP coordinates, shape (n, 2).
        simulated: True for simulated maps, shape (n,).
        groups: group of each experimental map, shape (number of experimental maps,), or None.
        title: the panel's title.
    """
    sim, exp = coords[simulated], coords[~simulated]
    ax.scatter(sim[:, 0], sim[:, 1], s=4, c="0.6", alpha=0.5, label=f"simulated ({len(sim)})")
    if groups is None:
        ax.scatter(exp[:, 0], exp[:, 1], s=18, c="C3", label=f"experimental ({len(exp)})")
    else:
        for k, group in enumerate(dict.fromkeys(map(str, groups))):
            pick = np.asarray(groups).astype(str) == group
            ax.scatter(exp[pick, 0], exp[pick, 1], s=18, c=f"C{(k + 3) % 10}",
                       label=f"experimental: {group} ({pick.sum()})")
    ax.set_title(title)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.legend(fontsize=7, markerscale=1.5)


def domains_figure(panels: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, str]],
                   path: Path, metadata: dict[str, str] | None = None) -> Path:
    """One panel per (coords, simulated, groups, title), side by side, written to ``path``
    (PNG text chunks hold ``metadata``)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6),
                             constrained_layout=True, squeeze=False)
    for ax, (coords, simulated, groups, title) in zip(axes[0], panels, strict=True):
        draw_domains(ax, coords, simulated, groups, title)
    fig.savefig(path, dpi=120, format="png", metadata=metadata)
    plt.close(fig)
    return path
