r"""The training loop of the posterior estimator (SPEC section 6), a plain seeded function.

On minibatches of simulations (x_s, u_s) and of unlabelled experimental maps x_e,

.. math::

    L = -\operatorname{mean} \log q(u_s \mid x_s)
        + \lambda_C\, \mathrm{CORAL}(f(x_s), f(x_e))
        + \lambda_\Phi\, \operatorname{mean}_e\, \mathbb E_{u \sim q(u \mid x_e)}
          \big[(\mu_s(u, T_e) - \Phi_e)^2\big],

with f the embedding, mu_s the frozen Phi surrogate and the expectation over reparameterised
flow samples; experimental maps whose corrected Phi is undefined (nothing but noise) are left
out of the Phi term. lambda_C = lambda_Phi = 0 is plain NPE. A share of the simulations is held
out; training stops when their NLL has not improved for ``patience`` epochs and returns the
best weights. After every epoch the whole state (weights, optimiser, random streams, history)
goes to a checkpoint, from which ``resume`` continues exactly where the run stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.coral import coral
from gbsbi.inference.flow import log_prob_given, sample_given
from gbsbi.inference.inputs import SCALARS, InputLayout
from gbsbi.inference.surrogate import PhiSurrogate

_PHI = SCALARS.index("phi_corrected")
_NOISE_ONLY = SCALARS.index("noise_only")
_T = SCALARS.index("temperature")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        epochs: the most passes over the training simulations.
        batch_size: simulations per step.
        learning_rate: Adam's step size.
        validation_fraction: share of the simulations held out for early stopping.
        patience: epochs without a better validation NLL before stopping.
        coral_weight: lambda_C.
        phi_weight: lambda_Phi.
        phi_samples: flow samples per experimental map for the Phi term.
        experimental_batch: experimental maps per step (all of them when fewer).
        clip_norm: largest gradient norm (as sbi's training does).
        seed: seeds the initial weights, the split and the batch order.
    """

    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    patience: int = 15
    coral_weight: float = 0.0
    phi_weight: float = 0.0
    phi_samples: int = 8
    experimental_batch: int = 256
    clip_norm: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 2,
            "learning_rate": self.learning_rate > 0, "patience": self.patience >= 1,
            "validation_fraction": 0 < self.validation_fraction < 1,
            "coral_weight": self.coral_weight >= 0, "phi_weight": self.phi_weight >= 0,
            "phi_samples": self.phi_samples >= 1,
            "experimental_batch": self.experimental_batch >= 2,
            "clip_norm": self.clip_norm > 0, "seed": self.seed >= 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or value != value or value in (float("inf"), float("-inf")):
                raise GbsbiError(f"training setting {name} = {value} is out of range")

    @property
    def adapted(self) -> bool:
        return self.coral_weight > 0 or self.phi_weight > 0

    def to_dict(self) -> dict:
        return asdict(self)


class TrainingSet(NamedTuple):
    """Simulations to learn from: inputs x, shape (n, D), and parameters u, shape (n, 3)."""

    x: Tensor
    u: Tensor


def split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of the training and validation parts of n simulations."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(fraction * n)))
    return order[n_val:], order[:n_val]


class _Losses(NamedTuple):
    total: Tensor
    nll: Tensor
    coral: Tensor
    phi: Tensor


def _losses(
    flow: torch.nn.Module,
    x: Tensor,
    u: Tensor,
    x_e: Tensor | None,
    config: TrainConfig,
    surrogate: PhiSurrogate | None,
    layout: InputLayout | None,
) -> _Losses:
    embedding = flow.net._embedding_net
    zero = x.new_zeros(())
    if x_e is None:
        nll = -log_prob_given(flow, u, embedding(x)).mean()
        return _Losses(nll, nll, zero, zero)
    features = embedding(torch.cat([x, x_e]))
    f_s, f_e = features[: len(x)], features[len(x) :]
    nll = -log_prob_given(flow, u, f_s).mean()
    coral_term = coral(f_s, f_e) if config.coral_weight > 0 else zero
    phi_term = zero
    if config.phi_weight > 0 and surrogate is not None:
        scalars = x_e[:, layout.scalars]
        usable = scalars[:, _NOISE_ONLY] == 0
        if usable.any():
            u_e = sample_given(flow, config.phi_samples, f_e[usable]).clamp(0, 1)
            t_e = scalars[usable, _T].expand(config.phi_samples, -1)
            mu, _ = surrogate(u_e, t_e)
            phi_term = (mu - scalars[usable, _PHI]).square().mean()
    total = nll + config.coral_weight * coral_term + config.phi_weight * phi_term
    return _Losses(total, nll, coral_term, phi_term)


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def train(
    flow: torch.nn.Module,
    data: TrainingSet,
    config: TrainConfig,
    *,
    experimental: Tensor | None = None,
    surrogate: PhiSurrogate | None = None,
    device: torch.device | str = "cpu",
    checkpoint: Path | None = None,
    settings: dict | None = None,
    resume: bool = False,
    progress: Callable[[float, dict], None] | None = None,
    max_seconds: float | None = None,
) -> list[dict]:
    """Train the flow q(u | x) (and its embedding) in place; return the history.

    Args:
        flow: sbi's estimator from :func:`gbsbi.inference.flow.build_flow`.
        data: simulations (x, u).
        config: the training settings.
        experimental: unlabelled experimental inputs x_e, shape (m, D), m >= 2, for CORAL and
            the Phi term; None for plain NPE.
        surrogate: the frozen Phi surrogate, needed when ``config.phi_weight`` > 0.
        device: where to train.
        checkpoint: file for the state after every epoch, or None.
        settings: what identifies the run (configuration, input hashes); a resumed run must
            have the same, and the same training settings but for ``epochs`` and ``patience``.
        resume: continue from ``checkpoint``.
        progress: called with the fraction of an epoch done and the last epoch's figures.
        max_seconds: stop after the epoch in which this much training time has passed (for
            benchmarks at a fixed budget; the epochs then depend on the machine's speed).

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``nll``, ``coral``, ``phi`` (training means),
        ``val_nll``, ``val_coral``, ``val_phi``, ``maps_per_s`` and ``seconds``; the flow holds
        the weights of the epoch with the best ``val_nll``.
    """
    device = torch.device(device)
    layout = getattr(flow.net._embedding_net, "layout", None)  # the inputs' parts, if known
    if config.phi_weight > 0 and (surrogate is None or layout is None):
        raise ValueError("the Phi term needs the surrogate and the map embedding")
    # A resumed run may stop later or earlier (epochs, patience); all else must be the same.
    stopping = ("epochs", "patience")
    settings = dict(settings or {}, training={k: v for k, v in config.to_dict().items()
                                              if k not in stopping})
    torch.manual_seed(config.seed)
    fit, val = split(len(data.x), config.validation_fraction, config.seed)
    x, u = data.x.to(device), data.u.to(device)
    x_e = None if experimental is None or not config.adapted else experimental.to(device)
    if x_e is not None and len(x_e) < 2:
        raise GbsbiError("adaptation needs at least 2 experimental maps")
    flow.to(device)
    if surrogate is not None:
        surrogate.to(device).eval().requires_grad_(False)
    optimiser = torch.optim.Adam(flow.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed + 1)
    history: list[dict] = []
    best, best_val, bad = None, float("inf"), 0
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, settings)
        flow.load_state_dict(state["flow"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, best = state["history"], state["best"]
        best_val, bad = state["best_val"], state["bad"]
    steps = max(1, -(-len(fit) // config.batch_size))
    for epoch in range(len(history), config.epochs):
        if bad >= config.patience:
            break
        if max_seconds is not None and sum(r["seconds"] for r in history) >= max_seconds:
            break
        flow.train()
        start = time.perf_counter()
        sums = torch.zeros(4)
        for k, batch in enumerate(fit[torch.randperm(len(fit), generator=generator)]
                                  .split(config.batch_size)):
            if len(batch) < 2:
                continue
            batch_e = None
            if x_e is not None:
                pick = torch.randperm(len(x_e), generator=generator)[: config.experimental_batch]
                batch_e = x_e[pick.to(device)]
            batch = batch.to(device)
            losses = _losses(flow, x[batch], u[batch], batch_e, config, surrogate, layout)
            optimiser.zero_grad()
            losses.total.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), config.clip_norm)
            optimiser.step()
            sums += torch.stack([v.detach().cpu() for v in losses]) * len(batch)
            if progress is not None:
                progress((k + 1) / steps, history[-1] if history else {})
        seconds = time.perf_counter() - start
        figures = _validate(flow, x[val.to(device)], u[val.to(device)], x_e, config, surrogate,
                            layout)
        record = {"epoch": epoch + 1, **dict(zip(("loss", "nll", "coral", "phi"),
                                               (sums / len(fit)).tolist(), strict=True)),
                  **figures, "maps_per_s": len(fit) / seconds, "seconds": seconds}
        history.append(record)
        if record["val_nll"] < best_val:
            best_val, bad = record["val_nll"], 0
            best = {k: v.detach().clone() for k, v in flow.state_dict().items()}
        else:
            bad += 1
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "settings": settings, "flow": flow.state_dict(),
                "optimiser": optimiser.state_dict(), "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "best": best,
                "best_val": best_val, "bad": bad,
            })
    if best is not None:
        flow.load_state_dict(best)
    flow.eval()
    return history


@torch.no_grad()
def _validate(
    flow: torch.nn.Module,
    x: Tensor,
    u: Tensor,
    x_e: Tensor | None,
    config: TrainConfig,
    surrogate: PhiSurrogate | None,
    layout: InputLayout | None,
) -> dict[str, float]:
    """Held-out NLL (and, with experimental maps, the CORAL and Phi terms against them)."""
    flow.eval()
    sums, count = torch.zeros(3), 0
    for batch in torch.arange(len(x), device=x.device).split(1024):
        losses = _losses(flow, x[batch], u[batch], x_e if len(batch) >= 2 else None,
                         config, surrogate, layout)
        sums += torch.stack([losses.nll, losses.coral, losses.phi]).cpu() * len(batch)
        count += len(batch)
    nll, coral_term, phi_term = (sums / count).tolist()
    return {"val_nll": nll, "val_coral": coral_term, "val_phi": phi_term}
