"""Figures, one module per part of the job: banks (``bank``), posteriors (``posterior``),
calibration (``check``), misspecification (``misspec``), predictive checks (``ppc``), the
cross-check (``crosscheck``) and feature maps (``features``). Each draws from numbers already
computed; matplotlib loads when a figure is drawn (:func:`pyplot`), not for ``gbsbi --help``.
"""

from __future__ import annotations

from pathlib import Path


def pyplot():  # noqa: ANN201 - matplotlib's pyplot module
    """matplotlib.pyplot on the file-only Agg backend, loaded on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 100) -> Path:  # noqa: ANN001 - a matplotlib figure
    """Write a figure and close it."""
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
