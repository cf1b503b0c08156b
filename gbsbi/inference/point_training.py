r"""Training of the paper's point estimator (SPEC sections 4 and 6; paper Methods, Eqs. 11-15).

The regressor u_hat = g(f(x)) (:mod:`gbsbi.inference.regressor`) is trained in stages, each a
plain seeded loop over minibatches of simulations (x_s, u_s) and of unlabelled experimental
maps x_e:

1. vanilla (Eq. 11): L_reg = mean_s ||u_hat_s - u_s||^2 / 3, the mean squared error over
   maps and parameters;
2. adaptation (Eq. 15), from the vanilla weights, every parameter:

   .. math::

       L = L_{reg} + \lambda_C\, \mathrm{CORAL}(f(x_s), f(x_e))
           + \lambda_\Phi\, \operatorname{mean}_e \big(\mu_s(\hat u_e, T_e) - \Phi_e\big)^2,

   with mu_s the frozen Phi surrogate; maps whose corrected Phi is undefined (nothing but
   noise) are left out of the Phi term;
3. per-group fine-tuning (:func:`fine_tune`): a copy of the head per group, of which only the
   last ``layers`` Linear layers move, on that group's maps, with the domain loss. f and the
   surrogate are frozen, so CORAL(f(x_s), f(x_e)) is a constant there and the head moves by
   the Phi term alone (and Adam's steps do not depend on a positive factor of the loss, so
   lambda_Phi does not matter either, as long as it is not 0).

Stages 1 and 2 hold out a share of the simulations and stop when the stage's objective on
them (with the domain terms against all experimental maps) has not improved for
``patience`` epochs, keeping the best epoch. After every epoch the state goes to a
checkpoint, from which ``resume`` continues, in the stage where the run stopped.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.coral import coral
from gbsbi.inference.inputs import InputLayout
from gbsbi.inference.regressor import HeadConfig, MLPHead, PointRegressor
from gbsbi.inference.surrogate import PhiSurrogate
from gbsbi.inference.training import (  # the scalars' places in x, as the NPE's Phi term reads
    _NOISE_ONLY,
    _PHI,
    _T,
    TrainConfig,
    TrainingSet,
    _save_checkpoint,
    load_checkpoint,
    split,
)


@dataclass(frozen=True)
class FineTuneConfig:
    """Settings of the per-group fine-tuning (defaults: those of ``gbsbi train``, chosen in
    studies/point_settings.py).

    Attributes:
        steps: Adam steps on all of a group's maps at once.
        learning_rate: Adam's step size.
        layers: how many of the head's last Linear layers are updated.
    """

    steps: int = 50
    learning_rate: float = 1e-4
    layers: int = 2

    def __post_init__(self) -> None:
        for name, ok in {"steps": self.steps >= 1, "learning_rate": self.learning_rate > 0,
                         "layers": self.layers >= 1}.items():
            value = getattr(self, name)
            if not ok or value != value or value == float("inf"):
                raise GbsbiError(f"fine-tuning setting {name} = {value} is out of range")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PointConfig:
    """What the point estimator adds to a model's configuration.

    Attributes:
        head: the MLP head's sizes.
        adaptation: the settings of stage 2 (positive CORAL or Phi weight), or None for the
            vanilla regressor; stage 1's are the model's ``training``.
        fine_tune: the settings of the per-group fine-tuning, or None for no group heads.
    """

    head: HeadConfig = field(default_factory=HeadConfig)
    adaptation: TrainConfig | None = None
    fine_tune: FineTuneConfig | None = None

    def __post_init__(self) -> None:
        if self.adaptation is not None and not self.adaptation.adapted:
            raise GbsbiError("the adaptation stage needs a positive CORAL or Phi weight")
        if self.fine_tune is not None and (self.adaptation is None
                                           or self.adaptation.phi_weight <= 0):
            raise GbsbiError("per-group fine-tuning moves the head by the Phi term only (the "
                             "feature extractor is frozen): it needs --experimental and a "
                             "positive --phi-weight")
        if self.fine_tune is not None and self.fine_tune.layers > len(self.head.hidden) + 1:
            raise GbsbiError(f"fine-tuning cannot update the last {self.fine_tune.layers} "
                             f"layers of a head with {len(self.head.hidden) + 1}")

    def stages(self, training: TrainConfig) -> tuple[TrainConfig, ...]:
        """The configurations of stages 1 and (where there is one) 2."""
        return (training,) if self.adaptation is None else (training, self.adaptation)

    def to_dict(self) -> dict:
        return {"head": self.head.to_dict(),
                "adaptation": None if self.adaptation is None else self.adaptation.to_dict(),
                "fine_tune": None if self.fine_tune is None else self.fine_tune.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> PointConfig:
        adaptation, fine = data.get("adaptation"), data.get("fine_tune")
        return cls(HeadConfig(**data["head"]),
                   None if adaptation is None else TrainConfig(**adaptation),
                   None if fine is None else FineTuneConfig(**fine))


class PointLosses(NamedTuple):
    total: Tensor
    mse: Tensor
    coral: Tensor
    phi: Tensor


def phi_residual(u_hat: Tensor, x_e: Tensor, layout: InputLayout,
                 surrogate: PhiSurrogate) -> Tensor:
    """L_Phi = mean_e (mu_s(u_hat_e, T_e) - Phi_e)^2 over the maps with a defined Phi.

    Args:
        u_hat: estimates for the experimental maps, shape (m, 3).
        x_e: their network inputs, shape (m, D) (Phi and T are read from the scalars).
        layout: where the scalars sit in x.
        surrogate: the frozen surrogate s(u, T).

    Returns:
        A scalar; 0 when no map has a defined corrected Phi.
    """
    scalars = x_e[:, layout.scalars]
    usable = scalars[:, _NOISE_ONLY] == 0
    if not usable.any():
        return u_hat.new_zeros(())
    mu, _ = surrogate(u_hat[usable], scalars[usable, _T])
    return (mu - scalars[usable, _PHI]).square().mean()


def point_losses(
    regressor: PointRegressor,
    x: Tensor,
    u: Tensor,
    x_e: Tensor | None,
    config: TrainConfig,
    surrogate: PhiSurrogate | None,
) -> PointLosses:
    """The stage's objective (module docstring) on one batch, with its terms."""
    zero = x.new_zeros(())
    features = regressor.embedding(x if x_e is None else torch.cat([x, x_e]))
    f_s = features[: len(x)]
    mse = (regressor.head(f_s) - u).square().mean()
    if x_e is None:
        return PointLosses(mse, mse, zero, zero)
    f_e = features[len(x) :]
    coral_term = coral(f_s, f_e) if config.coral_weight > 0 else zero
    phi_term = zero
    if config.phi_weight > 0 and surrogate is not None:
        phi_term = phi_residual(regressor.head(f_e), x_e, regressor.layout, surrogate)
    total = mse + config.coral_weight * coral_term + config.phi_weight * phi_term
    return PointLosses(total, mse, coral_term, phi_term)


def fit(
    regressor: PointRegressor,
    data: TrainingSet,
    stages: Sequence[TrainConfig],
    *,
    experimental: Tensor | None = None,
    surrogate: PhiSurrogate | None = None,
    device: torch.device | str = "cpu",
    checkpoint: Path | None = None,
    settings: dict | None = None,
    resume: bool = False,
    progress: Callable[[float, dict], None] | None = None,
) -> list[dict]:
    """Train the regressor in place through ``stages`` (vanilla, then adaptation); the history.

    Args:
        regressor: f and g, with f's input statistics set.
        data: simulations (x, u).
        stages: one training configuration per stage, in order; a stage with positive
            CORAL or Phi weights adapts to ``experimental``.
        experimental: unlabelled experimental inputs x_e, shape (m, D), m >= 2.
        surrogate: the frozen Phi surrogate, needed where a Phi weight is positive.
        device: where to train.
        checkpoint: file for the state after every epoch, or None.
        settings: what identifies the run; a resumed run must have the same, and the same
            stages but for their ``epochs`` and ``patience``.
        resume: continue from ``checkpoint``.
        progress: called with the epochs done in all stages (a fraction within the current
            one) and the last epoch's figures.

    Returns:
        One dict per epoch: ``stage`` (0, 1 ...), ``epoch`` (within the stage), ``loss``,
        ``mse``, ``coral``, ``phi`` (training means), ``val_loss``, ``val_mse``,
        ``val_coral``, ``val_phi``, ``maps_per_s``, ``seconds``.
    """
    if any(s.adapted for s in stages) and (experimental is None or len(experimental) < 2):
        raise GbsbiError("adaptation needs at least 2 experimental maps")
    if any(s.phi_weight > 0 for s in stages) and surrogate is None:
        raise ValueError("the Phi term needs the surrogate")
    stopping = ("epochs", "patience")
    settings = dict(settings or {}, stages=[
        {k: v for k, v in s.to_dict().items() if k not in stopping} for s in stages])
    state = None
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, settings)
    history: list[dict] = [] if state is None else state["history"]
    device = torch.device(device)
    regressor.to(device)
    if surrogate is not None:
        surrogate.to(device).eval().requires_grad_(False)
    for k in range(0 if state is None else state["stage"], len(stages)):
        resumed = state if state is not None and state["stage"] == k else None
        history = _stage(regressor, data, stages[k], k, history, experimental, surrogate, device,
                         checkpoint, settings, resumed, progress)
    regressor.eval()
    return history


def _stage(
    regressor: PointRegressor,
    data: TrainingSet,
    config: TrainConfig,
    stage: int,
    history: list[dict],
    experimental: Tensor | None,
    surrogate: PhiSurrogate | None,
    device: torch.device,
    checkpoint: Path | None,
    settings: dict,
    state: dict | None,
    progress: Callable[[float, dict], None] | None,
) -> list[dict]:
    """One stage of :func:`fit`, from its start or from a checkpoint ``state``."""
    torch.manual_seed(config.seed + stage)
    fit_idx, val_idx = split(len(data.x), config.validation_fraction, config.seed)
    x, u = data.x.to(device), data.u.to(device)
    x_e = experimental.to(device) if config.adapted else None
    optimiser = torch.optim.Adam(regressor.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed + 1 + stage)
    best, best_val, bad = None, float("inf"), 0
    if state is not None:
        regressor.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        best, best_val, bad = state["best"], state["best_val"], state["bad"]
    steps = max(1, -(-len(fit_idx) // config.batch_size))
    done = sum(r["stage"] == stage for r in history)
    for epoch in range(done, config.epochs):
        if bad >= config.patience:
            break
        regressor.train()
        start, sums = time.perf_counter(), torch.zeros(4)
        order = fit_idx[torch.randperm(len(fit_idx), generator=generator)]
        for j, batch in enumerate(order.split(config.batch_size)):
            if len(batch) < 2:
                continue
            batch_e = None
            if x_e is not None:
                pick = torch.randperm(len(x_e), generator=generator)[: config.experimental_batch]
                batch_e = x_e[pick.to(device)]
            batch = batch.to(device)
            losses = point_losses(regressor, x[batch], u[batch], batch_e, config, surrogate)
            optimiser.zero_grad()
            losses.total.backward()
            torch.nn.utils.clip_grad_norm_(regressor.parameters(), config.clip_norm)
            optimiser.step()
            sums += torch.stack([v.detach().cpu() for v in losses]) * len(batch)
            if progress is not None:
                progress(len(history) + (j + 1) / steps, history[-1] if history else {})
        seconds = time.perf_counter() - start
        record = {"stage": stage, "epoch": epoch + 1,
                  **dict(zip(("loss", "mse", "coral", "phi"), (sums / len(fit_idx)).tolist(),
                             strict=True)),
                  **validate(regressor, x[val_idx.to(device)], u[val_idx.to(device)], x_e,
                             config, surrogate),
                  "maps_per_s": len(fit_idx) / seconds, "seconds": seconds}
        history = [*history, record]
        if record["val_loss"] < best_val:
            best_val, bad = record["val_loss"], 0
            best = {k: v.detach().clone() for k, v in regressor.state_dict().items()}
        else:
            bad += 1
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "settings": settings, "stage": stage, "model": regressor.state_dict(),
                "optimiser": optimiser.state_dict(), "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "best": best,
                "best_val": best_val, "bad": bad,
            })
    if best is not None:
        regressor.load_state_dict(best)
    return history


@torch.no_grad()
def validate(
    regressor: PointRegressor,
    x: Tensor,
    u: Tensor,
    x_e: Tensor | None,
    config: TrainConfig,
    surrogate: PhiSurrogate | None,
) -> dict[str, float]:
    """The stage's objective and its terms on held-out simulations (and, when the stage
    adapts, against all experimental maps): ``val_loss``, ``val_mse``, ``val_coral``,
    ``val_phi``."""
    regressor.eval()
    sums, count = torch.zeros(3), 0
    for batch in torch.arange(len(x), device=x.device).split(1024):
        losses = point_losses(regressor, x[batch], u[batch],
                              x_e if len(batch) >= 2 else None, config, surrogate)
        sums += torch.stack([losses.mse, losses.coral, losses.phi]).cpu() * len(batch)
        count += len(batch)
    mse, coral_term, phi_term = (sums / count).tolist()
    total = mse + config.coral_weight * coral_term + config.phi_weight * phi_term
    return {"val_loss": total, "val_mse": mse, "val_coral": coral_term, "val_phi": phi_term}


def fine_tune(
    regressor: PointRegressor,
    x_e: Tensor,
    config: FineTuneConfig,
    surrogate: PhiSurrogate,
    seed: int = 0,
) -> tuple[MLPHead, list[dict]]:
    """A copy of the regressor's head fine-tuned on one group's maps (module docstring, 3).

    Args:
        regressor: the adapted regressor; neither it nor its head is changed.
        x_e: the group's network inputs, shape (m, D).
        config: steps, learning rate and how many last layers move.
        surrogate: the frozen Phi surrogate.
        seed: seeds torch (the loss is deterministic; the seed fixes nothing else).

    Returns:
        The group's head (eval mode, gradients off) and the Phi term after each step:
        records ``step`` (0 before the first) and ``phi``.
    """
    torch.manual_seed(seed)
    regressor.eval()
    surrogate.eval().requires_grad_(False)
    head = copy.deepcopy(regressor.head).requires_grad_(False)
    trainable = set(head.last_layers(config.layers))
    params = [p for name, p in head.named_parameters() if name in trainable]
    for p in params:
        p.requires_grad_(True)
    with torch.no_grad():
        features = regressor.embedding(x_e)
    optimiser = torch.optim.Adam(params, lr=config.learning_rate)
    history = []
    for step in range(config.steps + 1):
        loss = phi_residual(head(features), x_e, regressor.layout, surrogate)
        history.append({"step": step, "phi": loss.item()})
        if step == config.steps or not loss.requires_grad:  # done, or no map with a Phi
            break
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head.eval().requires_grad_(False), history
