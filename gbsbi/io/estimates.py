"""Point estimates of the paper's regressor: the per-scan CSV and a JSON record beside it.

The CSV has one row per scan: scan, group, T, the estimates D [nm^2/s], sigma [J/m^2] and c,
and the head that made them (``group NAME`` for a group's fine-tuned head, ``adapted`` or
``vanilla`` for the model's own). There are no intervals: a point estimator gives none. The
JSON record names the model (``model``, ``model_hash``), the maps file (``maps``,
``maps_hash``) and the estimator.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gbsbi.io.atomic import atomic_path
from gbsbi.io.posteriors import NAMES, unique_names, write_csv

#: What the output says of the numbers it holds.
NOTICE = "point estimates of the paper's regressor: no posterior, no intervals"


@dataclass(frozen=True)
class PointEstimates:
    """Estimates for a set of scans.

    Attributes:
        theta: (D, sigma, c) per scan, shape (scans, 3).
        head: the head that made each estimate, shape (scans,).
        scan: scan names, shape (scans,).
        temperature: K, shape (scans,).
        group: groups, shape (scans,), or None.
    """

    theta: np.ndarray
    head: np.ndarray
    scan: np.ndarray
    temperature: np.ndarray
    group: np.ndarray | None = None


def estimate_rows(estimates: PointEstimates) -> list[dict]:
    """One dict per scan: scan, group, T, D, sigma, c, head."""
    rows = []
    for k, scan in enumerate(unique_names(estimates.scan)):
        row = {"scan": scan, "group": "" if estimates.group is None else str(estimates.group[k]),
               "T": float(estimates.temperature[k])}
        row |= {name: float(estimates.theta[k, j]) for j, name in enumerate(NAMES)}
        rows.append(row | {"head": str(estimates.head[k])})
    return rows


def write_estimates(path: str | os.PathLike, rows: list[dict], record: dict) -> tuple[Path, Path]:
    """The CSV at ``path`` and the JSON ``record`` beside it (same stem), both or neither.

    Returns:
        The two paths.
    """
    path = Path(path)
    side = record_beside(path)
    with atomic_path(side) as tmp:
        tmp.write_text(json.dumps({"content": NOTICE, **record}, indent=1, sort_keys=True))
        write_csv(path, rows)
    return path, side


def record_beside(path: str | os.PathLike) -> Path:
    """The JSON record that goes with an estimates CSV."""
    return Path(path).with_suffix(".json")


def format_estimates(rows: list[dict]) -> str:
    """The per-scan table for the terminal, headed by what the numbers are."""
    width = max(4, *(len(r["scan"]) for r in rows))
    head = (f"{'scan':<{width}}  {'T [K]':>6}  {'D [nm^2/s]':>11}  {'sigma [J/m^2]':>13}  "
            f"{'c':>7}  head")
    lines = [f"# {NOTICE}", head]
    for r in rows:
        lines.append(f"{r['scan']:<{width}}  {r['T']:>6.1f}  {r['D']:>11.3g}  "
                     f"{r['sigma']:>13.3g}  {r['c']:>7.3g}  {r['head']}")
    return "\n".join(lines)
