r"""Training of the paper's point estimator (the source paper's Methods, Eqs. 11-15;
docs/inference.md#the-point-estimator).

The regressor u_hat = g(f(x)) (:mod:`gbsbi.inference.point.network`) is trained in stages,
each a run of the loop :func:`gbsbi.inference.loop.fit` over minibatches of simulations
(x_s, u_s) and of unlabelled experimental maps x_e:

1. vanilla (Eq. 11): L_reg = mean_s ||u_hat_s - u_s||^2 / 3, the mean squared error over
   maps and parameters;
2. adaptation (Eq. 15), from the vanilla weights, every parameter:

   .. math::

       L = L_{reg} + \lambda_C\, \mathrm{CORAL}(f(x_s), f(x_e))
           + \lambda_\Phi\, \operatorname{mean}_e \big(\mu_s(\hat u_e, T_e) - \Phi_e\big)^2,

   with mu_s the frozen Phi surrogate (:mod:`gbsbi.inference.domain`);
3. per-group fine-tuning (:func:`fine_tune`): a copy of the head per group, of which only the
   last ``layers`` Linear layers move, on that group's maps, with the domain loss. f and the
   surrogate are frozen, so CORAL(f(x_s), f(x_e)) is a constant there and the head moves by
   the Phi term alone (and Adam's steps do not depend on a positive factor of the loss, so
   lambda_Phi does not matter either, as long as it is not 0).

Stages 1 and 2 stop when the stage's objective on held-out simulations (against all
experimental maps) has not improved for ``patience`` epochs, keeping the best epoch. After
every epoch the state goes to a checkpoint, from which a resumed run continues, in the stage
where it stopped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.config import TrainConfig
from gbsbi.inference.data import ScanInputs
from gbsbi.inference.device import ThreadPolicy
from gbsbi.inference.domain import coral, phi_residual
from gbsbi.inference.loop import Losses, TrainingSet, fit, load_checkpoint, resumable
from gbsbi.inference.model import TrainedModel, build_networks, save_model
from gbsbi.inference.point.config import FineTuneConfig
from gbsbi.inference.point.network import MLPHead, PointRegressor, head_files
from gbsbi.inference.run import Run, epoch_bar
from gbsbi.inference.surrogate import PhiSurrogate

STAGES = ("vanilla", "adaptation")


def point_losses(regressor: PointRegressor, config: TrainConfig,
                 surrogate: PhiSurrogate | None) -> Losses:
    """The stage's objective (module docstring) as ``losses(x, u, x_e)`` for the loop:
    ``loss``, ``mse``, ``coral``, ``phi``."""
    if config.phi_weight > 0 and surrogate is None:
        raise ValueError("the Phi term needs the surrogate")
    if config.mmd_weight > 0 or config.augment_noise > 0:
        raise GbsbiError("the point estimator takes neither --mmd-weight nor --augment-noise "
                         "(they are the posterior estimator's)")

    def losses(x: Tensor, u: Tensor, x_e: Tensor | None) -> dict[str, Tensor]:
        zero = x.new_zeros(())
        features = regressor.embedding(x if x_e is None else torch.cat([x, x_e]))
        f_s = features[: len(x)]
        mse = (regressor.head(f_s) - u).square().mean()
        if x_e is None:
            return {"loss": mse, "mse": mse, "coral": zero, "phi": zero}
        f_e = features[len(x) :]
        coral_term = coral(f_s, f_e) if config.coral_weight > 0 else zero
        phi_term = zero
        if config.phi_weight > 0:
            phi_term = phi_residual(regressor.head(f_e), x_e, regressor.layout, surrogate)
        total = mse + config.coral_weight * coral_term + config.phi_weight * phi_term
        return {"loss": total, "mse": mse, "coral": coral_term, "phi": phi_term}

    return losses


def fit_stages(
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
    threads: ThreadPolicy | None = None,
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
        progress: called with the epochs done in all stages and the last epoch's record.
        threads: torch's thread policy, updated every epoch (None: left as it is).

    Returns:
        One dict per epoch: ``stage`` (0, 1 ...), ``epoch`` (within the stage), ``loss``,
        ``mse``, ``coral``, ``phi`` (training means) and their ``val_`` means,
        ``maps_per_s``, ``seconds``.
    """
    if any(s.adapted for s in stages) and (experimental is None or len(experimental) < 2):
        raise GbsbiError("adaptation needs at least 2 experimental maps")
    settings = dict(settings or {}, stages=[resumable(s) for s in stages])
    state = None
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, settings)
    if surrogate is not None:
        surrogate.to(device).eval().requires_grad_(False)
    history: list[dict] = [] if state is None else state["history"]
    for k in range(0 if state is None else state["stage"], len(stages)):
        config = stages[k]
        history = fit(regressor, point_losses(regressor, config, surrogate), data, config,
                      experimental=experimental if config.adapted else None, device=device,
                      stage=k, history=history, checkpoint=checkpoint, settings=settings,
                      state=state if state is not None and state["stage"] == k else None,
                      progress=progress, threads=threads)
    return history


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


def train_point(run: Run, *, log: Callable[[str], None] = print,
                show_progress: bool | None = None) -> TrainedModel:
    """Train the point estimator of ``run.spec`` and write its model directory: the
    regressor (its embedding standardised with the bank's statistics, as the flow's is), its
    stages, and a fine-tuned head per ``group`` of the experimental maps where asked."""
    spec, point = run.spec, run.spec.estimator
    x, u = torch.as_tensor(run.data.x), torch.as_tensor(run.data.u)
    torch.manual_seed(spec.training.seed)
    regressor, _ = build_networks(spec)
    regressor.embedding.set_standardisation(x.mean(0), x.std(0))
    stages = point.stages(spec.training)
    with epoch_bar(sum(s.epochs for s in stages), show_progress, "val_loss") as bar:
        history = fit_stages(regressor, TrainingSet(x, u), stages, experimental=run.experimental,
                             surrogate=run.surrogate, device=run.device,
                             checkpoint=run.checkpoint, settings=run.settings,
                             resume=run.resume, progress=bar, threads=run.threads)
    regressor.cpu()
    surrogate = run.surrogate.cpu()
    for k, name in enumerate(STAGES[: len(stages)]):
        records = [r for r in history if r["stage"] == k]
        best = min(records, key=lambda r: r["val_loss"])
        log(f"{name}: {len(records)} epochs, best validation MSE {best['val_mse']:.4f} "
            f"(epoch {best['epoch']}), {sum(r['maps_per_s'] for r in records) / len(records):.0f}"
            " maps/s")
    heads, tuning = {}, {}
    if point.fine_tune is not None:
        heads, tuning = fine_tune_groups(regressor, run.scans, point.fine_tune, surrogate,
                                         spec.training.seed, log)
    files = head_files(list(heads))
    provenance = {**run.provenance(), "fine_tuning": tuning, "group_heads": files}
    model = save_model(run.out, spec, regressor, surrogate, provenance, history,
                       {files[group]: head for group, head in heads.items()})
    run.checkpoint.unlink(missing_ok=True)
    log(f"wrote {run.out}: point estimator" + (f" with {len(heads)} group heads" if heads else ""))
    return model


def fine_tune_groups(
    regressor: PointRegressor,
    scans: ScanInputs,
    config: FineTuneConfig,
    surrogate: PhiSurrogate,
    seed: int,
    log: Callable[[str], None],
) -> tuple[dict[str, MLPHead], dict[str, dict]]:
    """A fine-tuned head per group of the maps, in the order the groups first appear.

    Returns:
        The heads, and per group its number of maps and Phi term before and after.
    """
    groups = list(dict.fromkeys(map(str, scans.maps.group)))
    x_e = torch.as_tensor(scans.x)
    heads, figures = {}, {}
    for group in groups:
        pick = torch.as_tensor(scans.maps.group.astype(str) == group)
        heads[group], steps = fine_tune(regressor, x_e[pick], config, surrogate, seed)
        figures[group] = {"n": int(pick.sum()), "phi_before": steps[0]["phi"],
                          "phi_after": steps[-1]["phi"]}
        if len(steps) == 1:
            log(f"warning: group {group!r} has no map with a defined corrected Phi; its head "
                "is the adapted model's")
        else:
            log(f"fine-tuned {group!r} on {figures[group]['n']} maps: Phi term "
                f"{steps[0]['phi']:.4f} -> {steps[-1]['phi']:.4f}")
    return heads, figures
