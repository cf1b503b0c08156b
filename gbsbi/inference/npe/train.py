r"""Training of the posterior estimator: its losses, handed to the loop
(docs/inference.md#objective).

On minibatches of simulations (x_s, u_s) and of unlabelled experimental maps x_e,

.. math::

    L = -\operatorname{mean} \log q(u_s \mid x_s)
        + \lambda_C\, \mathrm{CORAL}(f(x_s), f(x_e))
        + \lambda_\Phi\, \operatorname{mean}_e\, \mathbb E_{u \sim q(u \mid x_e)}
          \big[(\mu_s(u, T_e) - \Phi_e)^2\big],

with f the embedding, mu_s the frozen Phi surrogate and the expectation over reparameterised
flow samples (:mod:`gbsbi.inference.domain`); NPE-RS adds lambda_MMD MMD^2(f(x_s), f(x_e)).
lambda_C = lambda_Phi = lambda_MMD = 0 is plain NPE. With noise augmentation (NNPE) every
training simulation's standardised map and lag profile get Gaussian noise of sd s before the
embedding (validation sees them as they are). Early stopping and the best weights follow the
held-out NLL (``val_nll``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.config import TrainConfig
from gbsbi.inference.data import bank_maps
from gbsbi.inference.device import ThreadPolicy
from gbsbi.inference.domain import coral, mmd, phi_defined, phi_residual
from gbsbi.inference.flow import log_prob_given, parts, sample_given
from gbsbi.inference.loop import Losses, TrainingSet, fit, load_checkpoint, resumable, split
from gbsbi.inference.misspecification import fit_and_save_reference
from gbsbi.inference.model import TrainedModel, build_networks, save_model, save_state
from gbsbi.inference.npe.network import member_file
from gbsbi.inference.run import Run, epoch_bar
from gbsbi.inference.surrogate import PhiSurrogate


def npe_losses(flow: torch.nn.Module, config: TrainConfig,
               surrogate: PhiSurrogate | None = None) -> Losses:
    """The objective (module docstring) as ``losses(x, u, x_e)`` for the loop: ``loss``,
    ``nll``, ``coral``, ``phi``, ``mmd``."""
    embedding = parts(flow).embedding
    layout = getattr(embedding, "layout", None)  # the inputs' parts, where f knows them
    if config.phi_weight > 0 and (surrogate is None or layout is None):
        raise ValueError("the Phi term needs the surrogate and the map embedding")
    if config.augment_noise > 0 and layout is None:
        raise ValueError("noise augmentation needs the map embedding")

    def augmented(x: Tensor) -> Tensor:
        if config.augment_noise == 0 or not flow.training:
            return x
        columns = torch.zeros(x.shape[-1], dtype=torch.bool, device=x.device)
        columns[layout.map] = True
        columns[layout.lags] = True
        noise = torch.randn_like(x) * (config.augment_noise * embedding.scale)
        return x + torch.where(columns, noise, torch.zeros_like(noise))

    def losses(x: Tensor, u: Tensor, x_e: Tensor | None) -> dict[str, Tensor]:
        zero = x.new_zeros(())
        x = augmented(x)
        if x_e is None:
            nll = -log_prob_given(flow, u, embedding(x)).mean()
            return {"loss": nll, "nll": nll, "coral": zero, "phi": zero, "mmd": zero}
        features = embedding(torch.cat([x, x_e]))
        f_s, f_e = features[: len(x)], features[len(x) :]
        nll = -log_prob_given(flow, u, f_s).mean()
        coral_term = coral(f_s, f_e) if config.coral_weight > 0 else zero
        mmd_term = mmd(f_s, f_e) if config.mmd_weight > 0 else zero
        phi_term = zero
        if config.phi_weight > 0:
            usable = phi_defined(x_e, layout)  # draws only for maps with a defined Phi
            if usable.any():
                u_e = sample_given(flow, config.phi_samples, f_e[usable]).clamp(0, 1)
                phi_term = phi_residual(u_e, x_e[usable], layout, surrogate)
        total = (nll + config.coral_weight * coral_term + config.phi_weight * phi_term
                 + config.mmd_weight * mmd_term)
        return {"loss": total, "nll": nll, "coral": coral_term, "phi": phi_term,
                "mmd": mmd_term}

    return losses


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
    threads: ThreadPolicy | None = None,
    member: int | None = None,
    history: list[dict] | None = None,
) -> list[dict]:
    """Train the flow q(u | x) (and its embedding) in place; return the history.

    Args:
        flow: sbi's estimator from :func:`gbsbi.inference.flow.build_flow`.
        data: simulations (x, u).
        config: the training settings.
        experimental: unlabelled experimental inputs x_e, shape (m, D), m >= 2, for CORAL and
            the Phi term; None (or weights of 0) for plain NPE.
        surrogate: the frozen Phi surrogate, needed when ``config.phi_weight`` > 0.
        device: where to train.
        checkpoint: file for the state after every epoch, or None.
        settings: what identifies the run; a resumed run must have the same, and the same
            training settings but for ``epochs`` and ``patience``.
        resume: continue from ``checkpoint`` (where it is this member's).
        progress: called with the epochs done and the last epoch's record.
        max_seconds: stop after the epoch in which this much training time has passed.
        threads: torch's thread policy, updated every epoch (None: left as it is).
        member: the member's number in an ensemble (the loop's ``stage``: its seeds are
            ``config.seed + member``, its records carry it), None for a model of one.
        history: the records of the members trained before.

    Returns:
        The earlier members' records, then one dict per epoch (:func:`gbsbi.inference.loop.fit`):
        ``loss``, ``nll``, ``coral``, ``phi`` and their ``val_`` means, ``maps_per_s``,
        ``seconds``; the flow holds the weights of the epoch with the best ``val_nll``.
    """
    settings = dict(settings or {}, training=resumable(config))
    if surrogate is not None:
        surrogate.to(device).eval().requires_grad_(False)
    state = None
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, settings)
        if state["stage"] != (member or 0):
            state = None
    return fit(flow, npe_losses(flow, config, surrogate), data, config, monitor="nll",
               experimental=experimental if config.adapted else None, device=device,
               stage=member, history=history or (), checkpoint=checkpoint,
               settings=settings, state=state, progress=progress, max_seconds=max_seconds,
               threads=threads)


def _member_path(out: Path, k: int) -> Path:
    """Where a finished member waits while later members train (removed at the end)."""
    return out / f"member-{k}.pt"


def _finished(run: Run) -> int:
    """How many members an interrupted run finished (0 without ``--resume``)."""
    if not run.resume or not run.checkpoint.exists():
        return 0
    settings = dict(run.settings, training=resumable(run.spec.training))
    return int(load_checkpoint(run.checkpoint, settings)["stage"])


def train_npe(run: Run, *, log: Callable[[str], None] = print,
              show_progress: bool | None = None) -> TrainedModel:
    """Train the posterior estimator of ``run.spec`` (each member of an ensemble in turn, from
    its own initialisation, on the same split), write its model directory and its
    misspecification reference (of member 0's embedding)."""
    spec, training = run.spec, run.spec.training
    count = spec.estimator.members
    x, u = torch.as_tensor(run.data.x), torch.as_tensor(run.data.u)
    finished, flows, history = _finished(run), [], []
    with epoch_bar(training.epochs * count, show_progress, "val_nll") as bar:
        for k in range(count):
            torch.manual_seed(training.seed + k)
            flow, _ = build_networks(spec, u[:4096], x[:2])
            parts(flow).embedding.set_standardisation(x.mean(0), x.std(0))
            if k < finished:
                path = _member_path(run.out, k)
                if not path.exists():
                    raise GbsbiError(f"--resume: {path} is missing (member {k + 1} of {count} "
                                     "finished before the interruption); train again with "
                                     "--overwrite")
                flow.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                flows.append(flow.eval())
                continue
            history = train(flow, TrainingSet(x, u), training, experimental=run.experimental,
                            surrogate=run.surrogate, device=run.device,
                            checkpoint=run.checkpoint, settings=run.settings,
                            resume=run.resume, progress=bar, threads=run.threads,
                            member=k if count > 1 else None, history=history)
            if count > 1:
                save_state(_member_path(run.out, k), flow)
            flows.append(flow.cpu())
    model = save_model(run.out, spec, flows[0], run.surrogate.cpu(), run.provenance(), history,
                       {member_file(k): flow for k, flow in enumerate(flows) if k > 0})
    _, heldout = split(len(x), training.validation_fraction, training.seed)
    index = heldout.numpy()
    fit_and_save_reference(model, run.data.x[index], log, bank_maps(run.bank, index))
    run.checkpoint.unlink(missing_ok=True)
    for k in range(count):
        _member_path(run.out, k).unlink(missing_ok=True)
    for k in range(count):
        records = [r for r in history if r.get("stage", 0) == k]
        best = min(records, key=lambda r: r["val_nll"])
        log(f"{'wrote ' + str(run.out) if count == 1 else f'member {k + 1} of {count}'}: "
            f"{len(records)} epochs, best validation NLL {best['val_nll']:.3f} "
            f"(epoch {best['epoch']}), "
            f"{sum(r['maps_per_s'] for r in records) / len(records):.0f} maps/s")
    if count > 1:
        log(f"wrote {run.out}: an ensemble of {count} posterior estimators")
    return model
