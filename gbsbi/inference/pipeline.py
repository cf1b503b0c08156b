"""``gbsbi train`` as a function: bank and experimental maps in, a model directory out.

The steps: reduce the bank to network inputs (streamed), read the experimental maps (checked
against the bank's configuration), fit the Phi surrogate, build the flow with its embedding
(input statistics from the bank), train (checkpoint per epoch, resumable), write the model
directory, and fit the misspecification reference on the features of the held-out
(validation) simulations into it (:mod:`gbsbi.inference.misspecification`). Every check
of the inputs runs before anything is written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import BankInputs, ScanInputs, bank_inputs, scan_inputs
from gbsbi.inference.device import configure, cpu_threads
from gbsbi.inference.embedding import EmbeddingConfig
from gbsbi.inference.flow import FlowConfig
from gbsbi.inference.inputs import SCALARS, InputConfig, InputLayout
from gbsbi.inference.model import META, ModelSpec, TrainedModel, build_networks, save_model
from gbsbi.inference.surrogate import SurrogateConfig, fit_surrogate
from gbsbi.inference.training import TrainConfig, TrainingSet, split, train

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Architecture:
    """The networks' configuration apart from training (defaults: the shipped model)."""

    bins: int = 32
    grading: float = 2.0
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig)


def surrogate_data(
    x: torch.Tensor, u: torch.Tensor, layout: InputLayout
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(u, scaled T, corrected Phi with NaN where undefined) from network inputs x."""
    scalars = x[:, layout.scalars]
    phi = torch.where(scalars[:, SCALARS.index("noise_only")] > 0, torch.nan,
                      scalars[:, SCALARS.index("phi_corrected")])
    return u, scalars[:, SCALARS.index("temperature")], phi


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to replace a model or an interrupted run unless asked."""
    if out.exists() and not out.is_dir():
        raise GbsbiError(f"--out {out} is a file, expected a model directory")
    if not out.parent.is_dir():
        raise GbsbiError(f"cannot write {out}: folder {out.parent} does not exist")
    has_model = (out / META).exists()
    has_run = (out / CHECKPOINT).exists()
    if resume and has_model and not has_run:
        raise GbsbiError(f"--resume: {out} holds a finished model and no interrupted run; "
                         "pass --overwrite to train it again")
    if overwrite or resume:
        return
    if has_model:
        raise GbsbiError(f"{out} already holds a model; pass --overwrite to replace it")
    if has_run:
        raise GbsbiError(f"{out} holds an interrupted training run; continue it with --resume "
                         "or pass --overwrite to start afresh")
    if out.exists() and any(out.iterdir()):
        raise GbsbiError(f"{out} exists and is not empty; choose another --out or pass "
                         "--overwrite")


def train_model(
    bank: str | os.PathLike,
    out: str | os.PathLike,
    training: TrainConfig,
    *,
    experimental: str | os.PathLike | None = None,
    architecture: Architecture | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    show_progress: bool | None = None,
) -> TrainedModel:
    """Train a posterior estimator on a bank and write its model directory.

    Args:
        bank: a simulation bank, ideally simulated as measured (``--measurement fast``).
        out: the model directory.
        training: the training settings (weights of CORAL and of the Phi term among them).
        experimental: a maps file of unlabelled experimental maps for the adaptation; needed
            when a weight is positive.
        architecture: the networks (default :class:`Architecture`).
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: continue an interrupted run in ``out``.
        overwrite: replace what ``out`` holds.
        cache: folder for the bank's reduced inputs, or None.
        log: where messages go.
        show_progress: progress bars (None: when writing to a terminal).
    """
    architecture = architecture or Architecture()
    out = Path(out)
    _prepare_out(out, resume, overwrite)
    if training.adapted and experimental is None:
        raise GbsbiError("--coral and --phi-weight need --experimental MAPS.h5 (the unlabelled "
                         "maps to adapt to)")
    torch_device = configure(device)
    data, scans, spec = _read_inputs(bank, experimental, training, architecture, cache,
                                     log, show_progress)
    networks = {k: v for k, v in spec.to_dict().items() if k != "training"}
    settings = {"spec": networks, "bank": data.setup.content_hash,
                "experimental": None if scans is None else scans.content_hash}
    if overwrite and out.exists() and not resume:
        shutil.rmtree(out)
    out.mkdir(exist_ok=True)
    x, u = torch.as_tensor(data.x), torch.as_tensor(data.u)
    surrogate, surrogate_figures = fit_surrogate(
        *surrogate_data(x, u, InputLayout(spec.inputs.bins)), spec.surrogate, training.seed)
    log(f"Phi surrogate: held-out RMSE {surrogate_figures['rmse']:.3f}, "
        f"{surrogate_figures['coverage_68']:.0%} of held-out maps within one sd")
    torch.manual_seed(training.seed)
    flow, _ = build_networks(spec, u[:4096], x[:2])
    flow.net._embedding_net.set_standardisation(x.mean(0), x.std(0))
    x_e = None if scans is None else torch.as_tensor(scans.x)
    with tqdm(total=training.epochs, unit="epoch", desc="train", disable=_quiet(show_progress),
              bar_format="{l_bar}{bar}| {n:.1f}/{total} epochs [{elapsed}<{remaining}{postfix}]",
              ) as bar:
        def progress(fraction: float, last: dict) -> None:
            bar.n = last.get("epoch", 0) + fraction
            if last:
                bar.set_postfix(val_nll=f"{last['val_nll']:.3f}", loss=f"{last['loss']:.3f}",
                                maps_s=f"{last['maps_per_s']:.0f}", refresh=False)
            bar.refresh()

        history = train(flow, TrainingSet(x, u), training, experimental=x_e, surrogate=surrogate,
                        device=torch_device, checkpoint=out / CHECKPOINT, settings=settings,
                        resume=resume, progress=progress)
    provenance = {
        "bank": {"path": str(bank), "content_hash": data.setup.content_hash,
                 "config_hash": data.setup.config_hash, "n": data.setup.n,
                 "measurement": data.setup.measurement},
        "experimental": None if scans is None else {
            "path": str(experimental), "content_hash": scans.content_hash, "n": len(scans.x)},
        "surrogate_fit": surrogate_figures,
        "device": str(torch_device), "threads": cpu_threads(),
    }
    model = save_model(out, spec, flow.cpu(), surrogate.cpu(), provenance, history)
    _, heldout = split(len(x), training.validation_fraction, training.seed)
    fit_and_save_reference(model, data.x[heldout.numpy()], log)
    (out / CHECKPOINT).unlink(missing_ok=True)
    best = min(history, key=lambda r: r["val_nll"])
    log(f"wrote {out}: {len(history)} epochs, best validation NLL {best['val_nll']:.3f} "
        f"(epoch {best['epoch']}), {sum(r['maps_per_s'] for r in history) / len(history):.0f} "
        "maps/s")
    return model


def fit_and_save_reference(
    model: TrainedModel, heldout: np.ndarray, log: Callable[[str], None] = print
) -> None:
    """Fit the misspecification reference on held-out inputs and write it beside the model;
    with too few held-out simulations, say so and write none."""
    from gbsbi.inference.misspecification import (
        MIN_HELDOUT,
        MisspecConfig,
        fit_reference,
        save_reference,
    )

    if len(heldout) < MIN_HELDOUT:
        log(f"no misspecification reference: {len(heldout)} held-out simulations, "
            f"{MIN_HELDOUT} needed")
        return
    reference = fit_reference(model, heldout, MisspecConfig(seed=model.spec.training.seed))
    save_reference(model.directory, reference)
    log(f"misspecification reference: density of f(x) fitted on {reference.meta['n_fit']} "
        f"held-out simulations, {reference.meta['n_reference']} for the null (C2ST of the "
        f"density {reference.meta['c2st']:.2f}, 0.5 is ideal)")


def _quiet(show_progress: bool | None) -> bool | None:
    return None if show_progress is None else not show_progress


def _read_inputs(
    bank: str | os.PathLike,
    experimental: str | os.PathLike | None,
    training: TrainConfig,
    architecture: Architecture,
    cache: str | os.PathLike | None,
    log: Callable[[str], None],
    show_progress: bool | None,
) -> tuple[BankInputs, ScanInputs | None, ModelSpec]:
    from gbsbi.inference.data import read_bank_setup

    setup = read_bank_setup(bank)
    if setup.measurement == "none":
        log(f"warning: {bank} holds noiseless maps; a model trained on them is not fit for "
            "measured maps (simulate the bank with --measurement fast)")
    inputs = InputConfig(architecture.bins, architecture.grading, setup.prior.temperature)
    scans = None
    if experimental is not None:
        scans = scan_inputs(experimental, setup.config, inputs)
        for note in scans.notes:
            log(note)
        if training.adapted and len(scans.x) < 2:
            raise GbsbiError(f"{experimental}: adaptation needs at least 2 maps, found "
                             f"{len(scans.x)}")
    with tqdm(total=setup.n, unit="map", desc="reduce bank", disable=_quiet(show_progress)) as bar:
        data = bank_inputs(bank, inputs, cache=cache, progress=bar.update)
    spec = ModelSpec(setup.config, setup.prior, setup.nuisance, inputs, architecture.embedding,
                     architecture.flow, architecture.surrogate, training)
    return data, scans, spec
