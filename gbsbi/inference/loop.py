r"""The one training loop: a plain seeded function that every estimator passes its losses to.

An estimator supplies ``losses(x, u, x_e) -> dict`` of named scalar tensors on one batch of
simulations (x, u) and, where it adapts, a batch of unlabelled experimental inputs x_e (None
otherwise); the entry ``loss`` is what the optimiser minimises. The loop does the rest: seeds,
the split of the simulations into a training and a held-out part, minibatches, Adam, gradient
clipping, an optional cosine schedule, validation after every epoch (each term's mean on the
held-out part, as ``val_<name>``), early stopping on one of them (``monitor``), the best
weights, a checkpoint of the whole state after every epoch and an exact resume from it.

Randomness: ``torch.manual_seed(seed + stage)`` before the first epoch, the split from
``seed``, the batch order and the experimental batches from a generator seeded with
``seed + 1 + stage``; a resumed run restores both streams, so it continues bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gbsbi.errors import GbsbiError
from gbsbi.inference.config import TrainConfig
from gbsbi.inference.device import ThreadPolicy
from gbsbi.io.atomic import atomic_path

#: The losses of one batch: named scalar tensors, ``loss`` among them.
Losses = Callable[[Tensor, Tensor, Tensor | None], dict[str, Tensor]]
#: Validation batch size (no gradients: large batches are cheap).
VALIDATION_BATCH = 1024


class TrainingSet(NamedTuple):
    """Simulations to learn from: inputs x, shape (n, D), and targets u, shape (n, k)."""

    x: Tensor
    u: Tensor


def split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of the training and held-out parts of n simulations (held-out: at least 1)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(fraction * n)))
    return order[n_val:], order[:n_val]


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (a kill during the write leaves the previous one)."""
    with atomic_path(path, sync=True) as tmp:
        torch.save(state, tmp)


def _flatten(data: dict, prefix: str = "") -> dict:
    """Nested settings as one dict with dotted keys (``training.learning_rate``)."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def load_checkpoint(path: Path, settings: dict) -> dict:
    """A checkpoint's state, checked against this run's settings (they must be equal).

    Raises:
        GbsbiError: the checkpoint is unreadable or was made with other settings; the
            message names the first setting that differs.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise GbsbiError(f"--resume: {path} is not a readable checkpoint ({err})") from None
    found, wanted = _flatten(state.get("settings", {})), _flatten(settings)
    for key in sorted(set(found) | set(wanted)):
        if found.get(key) != wanted.get(key):
            raise GbsbiError(
                f"--resume: the interrupted run used {key} = {found.get(key)!r}, this one "
                f"{wanted.get(key)!r}; rerun with the same settings, or pass --overwrite "
                "to start afresh"
            )
    return state


def resumable(config: TrainConfig) -> dict:
    """The training settings a resumed run must share (all but ``epochs`` and ``patience``)."""
    return {k: v for k, v in config.to_dict().items() if k not in ("epochs", "patience")}


def fit(
    module: nn.Module,
    losses: Losses,
    data: TrainingSet,
    config: TrainConfig,
    *,
    monitor: str = "loss",
    experimental: Tensor | None = None,
    device: torch.device | str = "cpu",
    stage: int | None = None,
    history: Sequence[dict] = (),
    checkpoint: Path | None = None,
    settings: dict | None = None,
    state: dict | None = None,
    progress: Callable[[float, dict], None] | None = None,
    max_seconds: float | None = None,
    threads: ThreadPolicy | None = None,
) -> list[dict]:
    """Train ``module`` in place on ``losses``; return the history (module docstring).

    Args:
        module: what the optimiser moves (every parameter that requires a gradient).
        losses: the estimator's losses on one batch.
        data: simulations (x, u).
        config: epochs, batch size, rate, split, patience, clipping, schedule and seed.
        monitor: the term whose held-out mean decides early stopping and the best weights.
        experimental: unlabelled inputs x_e, shape (m, D), m >= 2, drawn
            ``config.experimental_batch`` at a time into every step; None for none.
        device: where to train.
        stage: the stage's number, for estimators trained in stages (recorded in each
            epoch's record and in the checkpoint, and added to the seeds); None for one stage.
        history: records of earlier stages, kept at the front of the returned history.
        checkpoint: file for the state after every epoch, or None.
        settings: what identifies the run, stored in the checkpoint for
            :func:`load_checkpoint`.
        state: a checkpoint's state (from :func:`load_checkpoint`) to continue from.
        progress: called with the epochs done (a fraction within the current one) and the
            last epoch's record.
        max_seconds: stop after the epoch in which this much training time has passed.
        threads: sets torch's thread count before every epoch (the cores other processes
            leave free); None leaves it as it is.

    Returns:
        The records of earlier stages, then one per epoch: ``stage`` (when given), ``epoch``,
        the training mean of each loss term, ``val_<term>`` for each, ``maps_per_s`` and
        ``seconds``. The module holds the weights of the epoch with the best
        ``val_<monitor>`` and is left in eval mode.
    """
    if experimental is not None and len(experimental) < 2:
        raise GbsbiError("adaptation needs at least 2 experimental maps")
    offset = stage or 0
    device = torch.device(device)
    torch.manual_seed(config.seed + offset)
    fit_idx, val_idx = split(len(data.x), config.validation_fraction, config.seed)
    x, u = data.x.to(device), data.u.to(device)
    x_e = None if experimental is None else experimental.to(device)
    module.to(device)
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=config.learning_rate)
    steps = max(1, -(-len(fit_idx) // config.batch_size))
    schedule = None
    if config.schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs * steps)
    generator = torch.Generator().manual_seed(config.seed + 1 + offset)
    history = list(history)
    best, best_val, bad = None, float("inf"), 0
    if state is not None:
        module.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history = list(state["history"])
        best, best_val, bad = state["best"], state["best_val"], state["bad"]
    mine = [r for r in history if r.get("stage") == stage]
    for epoch in range(len(mine), config.epochs):
        if bad >= config.patience:
            break
        if max_seconds is not None and sum(r["seconds"] for r in mine) >= max_seconds:
            break
        if threads is not None:
            threads.update()
        module.train()
        start, sums = time.perf_counter(), {}
        for k, batch in enumerate(fit_idx[torch.randperm(len(fit_idx), generator=generator)]
                                  .split(config.batch_size)):
            if len(batch) < 2:
                continue
            batch_e = None
            if x_e is not None:
                pick = torch.randperm(len(x_e), generator=generator)[: config.experimental_batch]
                batch_e = x_e[pick.to(device)]
            batch = batch.to(device)
            terms = losses(x[batch], u[batch], batch_e)
            optimiser.zero_grad()
            terms["loss"].backward()
            if config.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, config.clip_norm)
            optimiser.step()
            if schedule is not None:
                schedule.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(batch)
            if progress is not None:
                progress(len(history) + (k + 1) / steps, history[-1] if history else {})
        seconds = time.perf_counter() - start
        record = {} if stage is None else {"stage": stage}
        record |= {"epoch": epoch + 1, **{k: v / len(fit_idx) for k, v in sums.items()},
                   **validate(module, losses, x[val_idx.to(device)], u[val_idx.to(device)], x_e),
                   "maps_per_s": len(fit_idx) / seconds, "seconds": seconds}
        history.append(record)
        mine.append(record)
        if record[f"val_{monitor}"] < best_val:
            best_val, bad = record[f"val_{monitor}"], 0
            best = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            bad += 1
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "settings": settings or {}, "stage": offset, "model": module.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": None if schedule is None else schedule.state_dict(),
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "history": history, "best": best, "best_val": best_val, "bad": bad,
            })
    if best is not None:
        module.load_state_dict(best)
    module.eval()
    return history


@torch.no_grad()
def validate(module: nn.Module, losses: Losses, x: Tensor, u: Tensor,
             x_e: Tensor | None) -> dict[str, float]:
    """The mean of each loss term over held-out simulations (in batches, against all
    experimental inputs), as ``val_<name>``."""
    module.eval()
    sums, count = {}, 0
    for batch in torch.arange(len(x), device=x.device).split(VALIDATION_BATCH):
        terms = losses(x[batch], u[batch], x_e if len(batch) >= 2 else None)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(batch)
        count += len(batch)
    return {f"val_{name}": value / count for name, value in sums.items()}
