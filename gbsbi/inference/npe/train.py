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

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
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
from gbsbi.inference.npe.network import build, member_file
from gbsbi.inference.run import Run, epoch_bar
from gbsbi.inference.spec import ModelSpec
from gbsbi.inference.surrogate import PhiSurrogate
from gbsbi.io.atomic import write_atomic
from gbsbi.progress import progress_bar


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


def _initialised(spec: ModelSpec, x: Tensor, u: Tensor, seed: int) -> torch.nn.Module:
    """A fresh flow from torch seeded with ``seed``, its embedding standardised to x."""
    torch.manual_seed(seed)
    flow, _ = build_networks(spec, u[:4096], x[:2])
    parts(flow).embedding.set_standardisation(x.mean(0), x.std(0))
    return flow


def _member_path(out: Path, k: int) -> Path:
    """Where a finished member of an ensemble waits for the others (removed at the end); its
    history beside it (``.json``)."""
    return out / f"member-{k}.pt"


def _member_checkpoint(out: Path, k: int) -> Path:
    """The checkpoint of an ensemble's member k while it trains."""
    return out / f"checkpoint-{k}.pt"


def _train_member(job: dict) -> list[dict]:
    """Train member ``job["k"]`` of an ensemble from its own initialisation (torch seeded with
    seed + k), write its weights and history to :func:`_member_path`; its history. A plain
    function of picklable arguments: it runs in this process or in a worker of its own."""
    spec, k = job["spec"], job["k"]
    if job["threads"] is None:
        torch.set_num_threads(1)
    # arrays, not tensors, cross to a worker: torch would share tensors through file
    # descriptors, whose server thread prints a traceback when Ctrl-C cuts it off
    x, u = torch.as_tensor(job["x"]), torch.as_tensor(job["u"])
    experimental = None if job["experimental"] is None else torch.as_tensor(job["experimental"])
    surrogate = PhiSurrogate(spec.surrogate.hidden)
    surrogate.load_state_dict({name: torch.as_tensor(v) for name, v in job["surrogate"].items()})
    surrogate.eval().requires_grad_(False)
    flow = _initialised(spec, x, u, spec.training.seed + k)
    history = train(flow, TrainingSet(x, u), spec.training, experimental=experimental,
                    surrogate=surrogate, device=job["device"],
                    checkpoint=_member_checkpoint(job["out"], k), settings=job["settings"],
                    resume=job["resume"], progress=job.get("progress"), threads=job["threads"],
                    member=k)
    path = _member_path(job["out"], k)
    write_atomic(path.with_suffix(".json"), json.dumps(history))
    save_state(path, flow)  # last: its weights file marks a member finished
    return history


def _workers(run: Run, pending: int) -> int:
    """Members trained at once: one per free core on the CPU (each on one thread), one at a
    time on a GPU or with ``--threads``."""
    if run.device.type != "cpu" or pending < 2 or run.threads is None \
            or run.threads.fixed is not None:
        return 1
    return max(1, min(pending, run.threads.usable - int(round(run.threads.others()))))


def _train_members(run: Run, show_progress: bool | None) -> list[dict]:
    """Train every member of an ensemble not yet finished; the members' histories."""
    spec, count = run.spec, run.spec.estimator.members
    settings = dict(run.settings, training=resumable(spec.training))
    if run.resume and run.checkpoint.exists():
        raise GbsbiError(f"--resume: {run.out} holds an interrupted run of one member, this one "
                         f"asks for {count}; rerun with --members 1, or pass --overwrite")
    for k in range(count):
        files = (_member_path(run.out, k), _member_path(run.out, k).with_suffix(".json"),
                 _member_checkpoint(run.out, k))
        if not run.resume:  # what an earlier run left is not this run's
            for path in files:
                path.unlink(missing_ok=True)
            continue
        # every member's checkpoint is checked before any member trains: a refused resume
        # leaves the interrupted run as it was
        if files[0].exists() and not files[2].exists():
            raise GbsbiError(f"--resume: {files[2]} is missing (member {k + 1} of {count} "
                             "finished before the interruption); train again with --overwrite")
        if files[2].exists():
            load_checkpoint(files[2], settings)
    pending = [k for k in range(count) if not _member_path(run.out, k).exists()]
    fixed = None if run.threads is None else run.threads.fixed
    job = {"spec": spec, "x": np.asarray(run.data.x), "u": np.asarray(run.data.u),
           "experimental": None if run.scans is None else np.asarray(run.scans.x),
           "surrogate": {name: v.detach().cpu().numpy()
                         for name, v in run.surrogate.state_dict().items()},
           "device": run.device,
           "settings": run.settings, "resume": run.resume, "out": run.out,
           "threads": None if fixed is None else ThreadPolicy(fixed)}
    workers = _workers(run, len(pending))
    if workers == 1:
        threads = torch.get_num_threads()
        try:
            with epoch_bar(spec.training.epochs * len(pending), show_progress,
                           "val_nll") as bar:
                done = 0.0
                for k in pending:
                    history = _train_member(job | {"k": k, "progress": (
                        lambda n, last, before=done: bar(before + n, last))})
                    done += len(history)
        finally:
            torch.set_num_threads(threads)
    else:
        with progress_bar(len(pending), "train", "member", show_progress) as bar:
            _train_at_once(job, pending, workers, bar)
    return [json.loads(_member_path(run.out, k).with_suffix(".json").read_text())
            for k in range(count)]


def _train_at_once(job: dict, pending: list[int], workers: int, bar: object) -> None:
    """The pending members in ``workers`` spawned processes. Ctrl-C is left to this process
    (the workers ignore it), which stops them: each member keeps its last checkpoint. A worker
    that dies (out of memory) is an error, not a wait without end."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from gbsbi.workers import ctrl_c_held, ignore_ctrl_c

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=ignore_ctrl_c)
    try:
        with ctrl_c_held():  # the workers start inside the submits
            futures = [pool.submit(_train_member, job | {"k": k}) for k in pending]
        for future in as_completed(futures):
            future.result()
            bar.update(1)
    except BaseException as err:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(err, BrokenProcessPool):
            raise GbsbiError("a process training a member of the ensemble died (out of "
                             "memory?); the finished members and checkpoints are kept: "
                             "continue with --resume, or train with --threads 1 (one "
                             "member at a time)") from None
        raise
    pool.shutdown()


def _clean(out: Path) -> None:
    """Remove what an ensemble's training leaves beside the model (also a killed worker's
    half-written checkpoint)."""
    for pattern in ("member-*.pt", "member-*.json", "checkpoint-*.pt", ".checkpoint-*.tmp"):
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)


def train_npe(run: Run, *, log: Callable[[str], None] = print,
              show_progress: bool | None = None) -> TrainedModel:
    """Train the posterior estimator of ``run.spec`` (an ensemble's members each from its own
    initialisation, on the same split, at once on free cores), write its model directory and
    its misspecification reference (of member 0's embedding)."""
    spec, training = run.spec, run.spec.training
    count = spec.estimator.members
    x, u = torch.as_tensor(run.data.x), torch.as_tensor(run.data.u)
    if count == 1:
        if run.resume and any(run.out.glob("checkpoint-*.pt")):
            raise GbsbiError(f"--resume: {run.out} holds an interrupted ensemble, this run asks "
                             "for one member; rerun with its --members, or pass --overwrite")
        flow = _initialised(spec, x, u, training.seed)
        with epoch_bar(training.epochs, show_progress, "val_nll") as bar:
            history = train(flow, TrainingSet(x, u), training, experimental=run.experimental,
                            surrogate=run.surrogate, device=run.device,
                            checkpoint=run.checkpoint, settings=run.settings,
                            resume=run.resume, progress=bar, threads=run.threads)
        histories, flows = [history], [flow.cpu()]
    else:
        histories = _train_members(run, show_progress)
        flows = []
        for k in range(count):
            flow = build(spec)  # the flow alone: the surrogate is the run's
            flow.load_state_dict(torch.load(_member_path(run.out, k), map_location="cpu",
                                            weights_only=True))
            flows.append(flow.eval())
    history = [record for member in histories for record in member]
    model = save_model(run.out, spec, flows[0], run.surrogate.cpu(), run.provenance(), history,
                       {member_file(k): flow for k, flow in enumerate(flows) if k > 0})
    _, heldout = split(len(x), training.validation_fraction, training.seed)
    index = heldout.numpy()
    fit_and_save_reference(model, run.data.x[index], log, bank_maps(run.bank, index))
    run.checkpoint.unlink(missing_ok=True)
    _clean(run.out)
    for k, records in enumerate(histories):
        best = min(records, key=lambda r: r["val_nll"])
        log(f"{'wrote ' + str(run.out) if count == 1 else f'member {k + 1} of {count}'}: "
            f"{len(records)} epochs, best validation NLL {best['val_nll']:.3f} "
            f"(epoch {best['epoch']}), "
            f"{sum(r['maps_per_s'] for r in records) / len(records):.0f} maps/s")
    if count > 1:
        log(f"wrote {run.out}: an ensemble of {count} posterior estimators")
    return model
