"""Point estimates for every scan of a maps file, from a point model, with the head of each
scan's group where the model has one (per-group fine-tuning)."""

from __future__ import annotations

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import ScanInputs
from gbsbi.inference.model import TrainedModel
from gbsbi.inference.point.network import MLPHead, predict
from gbsbi.inference.spec import META
from gbsbi.io.estimates import PointEstimates

#: ``auto``: a scan's group head where the model has one, else the model's own head;
#: ``global``: the model's own head for every scan; ``group``: a group head for every scan.
HEADS = ("auto", "global", "group")


def group_heads(model: TrainedModel) -> dict[str, MLPHead]:
    """The fine-tuned head of each group (``group_heads`` of ``model.json``), maybe none."""
    files = model.meta.get("group_heads") or {}
    if not isinstance(files, dict):
        raise GbsbiError(f"{model.directory / META}: 'group_heads' is not a mapping")
    heads = {}
    for group, name in files.items():
        if name not in model.parts:
            raise GbsbiError(f"{model.directory / META}: group {group!r} names the head file "
                             f"{name!r}, which is not among its hashed weights")
        heads[str(group)] = model.parts[name]
    return heads


def _own_head(model: TrainedModel) -> str:
    return "vanilla" if model.spec.estimator.adaptation is None else "adapted"


def choose_heads(model: TrainedModel, scans: ScanInputs, heads: str = "auto"
                 ) -> tuple[np.ndarray, list[str]]:
    """The head of each scan: a group of :func:`group_heads`, or None for the model's own.

    Returns:
        The heads, shape (scans,), and notes on scans left to the model's own head.

    Raises:
        GbsbiError: ``heads = "group"`` and the model has no group heads, the maps no groups,
            or a scan's group has no head.
    """
    if heads not in HEADS:
        raise GbsbiError(f"--head must be one of {', '.join(HEADS)}, got {heads!r}")
    own = _own_head(model)
    groups = scans.maps.group
    available = group_heads(model)
    if heads == "group":
        if not available:
            raise GbsbiError(f"{model.directory}: the model has no per-group heads (trained "
                             "without --fine-tune-groups); use --head auto or global")
        if groups is None:
            raise GbsbiError("--head group: the maps file has no 'group' dataset")
        missing = sorted({str(g) for g in groups} - set(available))
        if missing:
            raise GbsbiError(f"--head group: the model has no head for group {missing[0]!r} "
                             f"(it has {', '.join(sorted(available))})")
    if heads == "global" or groups is None or not available:
        return np.full(len(scans.x), None, dtype=object), []
    chosen = np.array([str(g) if str(g) in available else None for g in groups], dtype=object)
    notes = []
    unknown = sorted({str(g) for g in groups} - set(available))
    if unknown:
        notes.append(f"no fine-tuned head for group(s) {', '.join(map(repr, unknown))}: their "
                     f"scans use the {own} head")
    return chosen, notes


def point_estimates(model: TrainedModel, scans: ScanInputs, heads: str = "auto"
                    ) -> tuple[PointEstimates, list[str]]:
    """Estimates of (D, sigma, c) per scan (see :func:`choose_heads` for ``heads``)."""
    if model.spec.kind != "point":
        raise GbsbiError(f"{model.directory}: not a point model (estimator "
                         f"{model.spec.kind!r})")
    chosen, notes = choose_heads(model, scans, heads)
    available = group_heads(model)
    x = torch.as_tensor(scans.x)
    u = np.zeros((len(x), 3))
    for name in dict.fromkeys(chosen):
        pick = np.array([c == name for c in chosen])
        head = None if name is None else available[name]
        u[pick] = predict(model.network, x[torch.as_tensor(pick)], head).double().numpy()
    labels = np.array([_own_head(model) if c is None else f"group {c}" for c in chosen])
    maps = scans.maps
    theta = model.spec.prior.from_unit(u)
    return PointEstimates(theta, labels, maps.names(), maps.temperature, maps.group), notes
