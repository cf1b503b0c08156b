"""What every estimator's training starts from: the checked inputs of a run.

:func:`prepare` checks every input before anything is written, makes the model directory,
reduces the bank to network inputs (streamed, cached by content hash), reads the experimental
maps (checked against the bank's configuration) and fits the Phi surrogate. The estimator's
``train`` (:mod:`gbsbi.inference.npe.train`, :mod:`gbsbi.inference.point.train`) takes the
:class:`Run` from there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.config import Architecture, TrainConfig
from gbsbi.inference.data import BankInputs, ScanInputs, bank_inputs, read_bank_setup, scan_inputs
from gbsbi.inference.device import ThreadPolicy, configure, cpu_threads
from gbsbi.inference.inputs import SCALARS, InputConfig, InputLayout
from gbsbi.inference.npe.config import NpeConfig
from gbsbi.inference.point.config import PointConfig
from gbsbi.inference.spec import META, ModelSpec
from gbsbi.inference.surrogate import PhiSurrogate, fit_surrogate
from gbsbi.progress import progress_bar

CHECKPOINT = "checkpoint.pt"


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
        resume: continue an interrupted run in ``out``.
        threads: torch's thread policy, updated every epoch.
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
    resume: bool = False
    threads: ThreadPolicy | None = None

    @property
    def experimental(self) -> torch.Tensor | None:
        return None if self.scans is None else torch.as_tensor(self.scans.x)

    @property
    def checkpoint(self) -> Path:
        return self.out / CHECKPOINT

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


def adapts(training: TrainConfig, estimator: NpeConfig | PointConfig) -> bool:
    """Whether any stage of the run needs experimental maps."""
    return training.adapted or getattr(estimator, "adaptation", None) is not None


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
    has_run = (out / CHECKPOINT).exists() or any(out.glob("checkpoint-*.pt"))  # an ensemble
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


def prepare(
    bank: str | os.PathLike,
    out: str | os.PathLike,
    training: TrainConfig,
    estimator: NpeConfig | PointConfig,
    *,
    experimental: str | os.PathLike | None = None,
    architecture: Architecture | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    show_progress: bool | None = None,
    threads: int | None = None,
) -> Run:
    """Every input checked, the output directory made, the bank reduced and the Phi
    surrogate fitted (arguments: :func:`gbsbi.inference.pipeline.train_model`)."""
    architecture = architecture or Architecture()
    out = Path(out)
    _prepare_out(out, resume, overwrite)
    if adapts(training, estimator) and experimental is None:
        raise GbsbiError("--coral and --phi-weight need --experimental MAPS.h5 (the unlabelled "
                         "maps to adapt to)")
    policy = ThreadPolicy(threads)
    torch_device = configure(device, policy=policy)
    data, scans, spec = _read_inputs(bank, experimental, training, estimator, architecture,
                                     cache, log, show_progress)
    # the networks' settings; an estimator's own stages are checked by its trainer
    networks = {k: v for k, v in spec.to_dict().items() if k not in ("training", "point")}
    if isinstance(estimator, PointConfig):
        networks["head"] = estimator.head.to_dict()
    settings = {"spec": networks, "bank": data.setup.content_hash,
                "experimental": None if scans is None else scans.content_hash}
    if overwrite and out.exists() and not resume:
        shutil.rmtree(out)
    out.mkdir(exist_ok=True)
    x, u = torch.as_tensor(data.x), torch.as_tensor(data.u)
    surrogate, surrogate_figures = fit_surrogate(
        *surrogate_data(x, u, spec.inputs.layout), spec.surrogate, training.seed)
    log(f"Phi surrogate: held-out RMSE {surrogate_figures['rmse']:.3f}, "
        f"{surrogate_figures['coverage_68']:.0%} of held-out maps within one sd")
    return Run(bank, experimental, out, data, scans, spec, torch_device, settings, surrogate,
               surrogate_figures, resume, policy)


def _read_inputs(
    bank: str | os.PathLike,
    experimental: str | os.PathLike | None,
    training: TrainConfig,
    estimator: NpeConfig | PointConfig,
    architecture: Architecture,
    cache: str | os.PathLike | None,
    log: Callable[[str], None],
    show_progress: bool | None,
) -> tuple[BankInputs, ScanInputs | None, ModelSpec]:
    setup = read_bank_setup(bank)
    if setup.measurement == "none":
        log(f"warning: {bank} holds noiseless maps; a model trained on them is not fit for "
            "measured maps (simulate the bank with --measurement fast)")
    inputs = InputConfig(architecture.bins, architecture.grading, setup.prior.temperature,
                         setup.prior.age if setup.prior.aged else None)
    scans = None
    if experimental is not None:
        scans = scan_inputs(experimental, setup.config, inputs)
        for note in scans.notes:
            log(note)
        if adapts(training, estimator) and len(scans.x) < 2:
            raise GbsbiError(f"{experimental}: adaptation needs at least 2 maps, found "
                             f"{len(scans.x)}")
        if getattr(estimator, "fine_tune", None) is not None and scans.maps.group is None:
            raise GbsbiError(f"--fine-tune-groups: {experimental} has no 'group' dataset (one "
                             "group name per map); add one or train without "
                             "--fine-tune-groups")
    with progress_bar(setup.n, "reduce bank", "map", show_progress) as bar:
        data = bank_inputs(bank, inputs, cache=cache, progress=bar.update)
    spec = ModelSpec(setup.config, setup.prior, setup.nuisance, inputs, architecture.embedding,
                     architecture.surrogate, training, estimator, setup.sample)
    return data, scans, spec


@contextlib.contextmanager
def epoch_bar(total: int, show_progress: bool | None,
              figure: str) -> Iterator[Callable[[float, dict], None]]:
    """A progress bar over ``total`` epochs; yields ``update(epochs_done, last_record)``,
    which shows the last epoch's ``figure``, loss and maps/s."""
    with progress_bar(total, "train", "epoch", show_progress,
                      bar_format="{l_bar}{bar}| {n:.1f}/{total} epochs "
                      "[{elapsed}<{remaining}{postfix}]") as bar:
        def update(done: float, last: dict) -> None:
            bar.n = done
            if last:
                bar.set_postfix({figure: f"{last[figure]:.3f}", "loss": f"{last['loss']:.3f}",
                                 "maps_s": f"{last['maps_per_s']:.0f}"}, refresh=False)
            bar.refresh()

        yield update
