"""``gbsbi train`` as a function: bank and experimental maps in, a model directory out.

The steps: reduce the bank to network inputs (streamed), read the experimental maps (checked
against the bank's configuration), fit the Phi surrogate (:func:`prepare`, shared with the
point estimator of :mod:`gbsbi.inference.point_pipeline`), build the flow with its embedding
(input statistics from the bank), train (checkpoint per epoch, resumable), write the model
directory, and fit the misspecification reference on the features of the held-out
(validation) simulations into it (:mod:`gbsbi.inference.misspecification`). Every check
of the inputs runs before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
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
from gbsbi.inference.point_training import PointConfig
from gbsbi.inference.surrogate import PhiSurrogate, SurrogateConfig, fit_surrogate
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
    point: PointConfig | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    show_progress: bool | None = None,
) -> TrainedModel:
    """Train a posterior estimator (or the paper's point estimator) on a bank and write its
    model directory.

    Args:
        bank: a simulation bank, ideally simulated as measured (``--measurement fast``).
        out: the model directory.
        training: the training settings (weights of CORAL and of the Phi term among them);
            for a point estimator, those of its vanilla stage.
        experimental: a maps file of unlabelled experimental maps for the adaptation; needed
            when a weight is positive.
        architecture: the networks (default :class:`Architecture`).
        point: train the point estimator with these stages
            (:mod:`gbsbi.inference.point_pipeline`) instead of the posterior estimator.
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: continue an interrupted run in ``out``.
        overwrite: replace what ``out`` holds.
        cache: folder for the bank's reduced inputs, or None.
        log: where messages go.
        show_progress: progress bars (None: when writing to a terminal).
    """
    run = prepare(bank, out, training, experimental=experimental, architecture=architecture,
                  point=point, device=device, resume=resume, overwrite=overwrite, cache=cache,
                  log=log, show_progress=show_progress)
    if point is not None:
        from gbsbi.inference.point_pipeline import train_point

        return train_point(run, resume=resume, log=log, show_progress=show_progress)
    data, spec, out = run.data, run.spec, run.out
    x, u = torch.as_tensor(data.x), torch.as_tensor(data.u)
    torch.manual_seed(training.seed)
    flow, _ = build_networks(spec, u[:4096], x[:2])
    flow.net._embedding_net.set_standardisation(x.mean(0), x.std(0))
    with epoch_bar(training.epochs, show_progress, "val_nll") as bar:
        history = train(flow, TrainingSet(x, u), training, experimental=run.experimental,
                        surrogate=run.surrogate, device=run.device, checkpoint=out / CHECKPOINT,
                        settings=run.settings, resume=resume,
                        progress=lambda fraction, last: bar(last.get("epoch", 0) + fraction,
                                                            last))
    model = save_model(out, spec, flow.cpu(), run.surrogate.cpu(), run.provenance(), history)
    _, heldout = split(len(x), training.validation_fraction, training.seed)
    fit_and_save_reference(model, data.x[heldout.numpy()], log)
    (out / CHECKPOINT).unlink(missing_ok=True)
    best = min(history, key=lambda r: r["val_nll"])
    log(f"wrote {out}: {len(history)} epochs, best validation NLL {best['val_nll']:.3f} "
        f"(epoch {best['epoch']}), {sum(r['maps_per_s'] for r in history) / len(history):.0f} "
        "maps/s")
    return model


@dataclass(frozen=True)
class Run:
    """A training run's checked inputs, before any network is trained.

    Attributes:
        bank, experimental_path: the files, as given.
        out: the model directory (created, empty unless resuming).
        data: the bank as network inputs.
        scans: the experimental maps as network inputs, or None.
        spec: the model's configuration.
        device: where to train.
        settings: what identifies the run for ``--resume``.
        surrogate: the fitted Phi surrogate, frozen.
        surrogate_figures: its held-out figures.
    """

    bank: str | os.PathLike
    experimental_path: str | os.PathLike | None
    out: Path
    data: BankInputs
    scans: ScanInputs | None
    spec: ModelSpec
    device: torch.device
    settings: dict
    surrogate: PhiSurrogate
    surrogate_figures: dict

    @property
    def experimental(self) -> torch.Tensor | None:
        return None if self.scans is None else torch.as_tensor(self.scans.x)

    def provenance(self) -> dict:
        """Hashes and figures of what the model saw, for ``model.json``."""
        setup, scans = self.data.setup, self.scans
        return {
            "bank": {"path": str(self.bank), "content_hash": setup.content_hash,
                     "config_hash": setup.config_hash, "n": setup.n,
                     "measurement": setup.measurement},
            "experimental": None if scans is None else {
                "path": str(self.experimental_path), "content_hash": scans.content_hash,
                "n": len(scans.x)},
            "surrogate_fit": self.surrogate_figures,
            "device": str(self.device), "threads": cpu_threads(),
        }


def prepare(
    bank: str | os.PathLike,
    out: str | os.PathLike,
    training: TrainConfig,
    *,
    experimental: str | os.PathLike | None,
    architecture: Architecture | None,
    point: PointConfig | None,
    device: str,
    resume: bool,
    overwrite: bool,
    cache: str | os.PathLike | None,
    log: Callable[[str], None],
    show_progress: bool | None,
) -> Run:
    """What both estimators start from (arguments of :func:`train_model`): every input
    checked, the output directory made, the bank reduced and the Phi surrogate fitted."""
    architecture = architecture or Architecture()
    out = Path(out)
    _prepare_out(out, resume, overwrite)
    adapted = training.adapted or (point is not None and point.adaptation is not None)
    if adapted and experimental is None:
        raise GbsbiError("--coral and --phi-weight need --experimental MAPS.h5 (the unlabelled "
                         "maps to adapt to)")
    torch_device = configure(device)
    data, scans, spec = _read_inputs(bank, experimental, training, architecture, cache,
                                     log, show_progress, point)
    if point is not None and point.fine_tune is not None and scans.maps.group is None:
        raise GbsbiError(f"--fine-tune-groups: {experimental} has no 'group' dataset (one "
                         "group name per map); add one or train without --fine-tune-groups")
    networks = {k: v for k, v in spec.to_dict().items() if k not in ("training", "point")}
    if point is not None:  # the stages' settings are checked by the point estimator's loop
        networks["head"] = point.head.to_dict()
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
    return Run(bank, experimental, out, data, scans, spec, torch_device, settings, surrogate,
               surrogate_figures)


@contextlib.contextmanager
def epoch_bar(total: int, show_progress: bool | None,
              figure: str) -> Iterator[Callable[[float, dict], None]]:
    """A progress bar over ``total`` epochs; yields ``update(epochs_done, last_record)``,
    which shows the last epoch's ``figure``, loss and maps/s."""
    with tqdm(total=total, unit="epoch", desc="train", disable=_quiet(show_progress),
              bar_format="{l_bar}{bar}| {n:.1f}/{total} epochs [{elapsed}<{remaining}{postfix}]",
              ) as bar:
        def update(done: float, last: dict) -> None:
            bar.n = done
            if last:
                bar.set_postfix({figure: f"{last[figure]:.3f}", "loss": f"{last['loss']:.3f}",
                                 "maps_s": f"{last['maps_per_s']:.0f}"}, refresh=False)
            bar.refresh()

        yield update


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
    point: PointConfig | None = None,
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
        adapted = training.adapted or (point is not None and point.adaptation is not None)
        if adapted and len(scans.x) < 2:
            raise GbsbiError(f"{experimental}: adaptation needs at least 2 maps, found "
                             f"{len(scans.x)}")
    with tqdm(total=setup.n, unit="map", desc="reduce bank", disable=_quiet(show_progress)) as bar:
        data = bank_inputs(bank, inputs, cache=cache, progress=bar.update)
    spec = ModelSpec(setup.config, setup.prior, setup.nuisance, inputs, architecture.embedding,
                     None if point is not None else architecture.flow, architecture.surrogate,
                     training, "npe" if point is None else "point", point)
    return data, scans, spec
