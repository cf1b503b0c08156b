"""A posterior estimator on (Phi_corr, T) alone, for the cross-check with emcee
(docs/validation.md#cross-check-with-phi-alone): a small flow q(u | Phi_corr, T) trained by
the same loop on the model's own bank, saved beside the cross-check's results and reused."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.config import FlowConfig, TrainConfig
from gbsbi.inference.data import bank_inputs, read_bank_setup
from gbsbi.inference.flow import build_flow, unit_box
from gbsbi.inference.inputs import SCALARS, InputLayout
from gbsbi.inference.loop import TrainingSet
from gbsbi.inference.model import TrainedModel, save_state, sha256
from gbsbi.inference.npe.train import train
from gbsbi.io.atomic import write_atomic

META, WEIGHTS = "phi_npe.json", "phi_npe.pt"


@dataclass(frozen=True)
class PhiNpeConfig:
    """The Phi-only posterior estimator: its flow and training."""

    flow: FlowConfig = field(default_factory=lambda: FlowConfig(transforms=3, hidden=32))
    training: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=100, batch_size=512, patience=8))

    def to_dict(self) -> dict:
        return {"flow": self.flow.to_dict(), "training": self.training.to_dict()}


def phi_inputs(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(Phi_corr, scaled T) of network inputs x, shape (n, 2), and whether Phi_corr is
    defined, shape (n,)."""
    scalars = x[:, InputLayout(bins).scalars]
    defined = scalars[:, SCALARS.index("noise_only")] == 0
    pair = scalars[:, [SCALARS.index("phi_corrected"), SCALARS.index("temperature")]]
    return pair.astype(np.float32), defined


@dataclass
class PhiNpe:
    """A trained Phi-only estimator: the flow, its record, and whether it was just trained."""

    flow: torch.nn.Module
    meta: dict
    new: bool

    def sample(self, pair: np.ndarray, draws: int, seed: int) -> np.ndarray:
        """u ~ q(u | Phi_corr, T) inside the cube for one pair, shape (draws, 3)."""
        from sbi.inference import DirectPosterior

        torch.manual_seed(seed)
        posterior = DirectPosterior(self.flow, unit_box())
        return posterior.sample((draws,), x=torch.as_tensor(pair),
                                show_progress_bars=False).numpy()

    def save(self, directory: Path) -> None:
        """Weights and a JSON with the settings, the bank's hash and the weights' SHA-256."""
        directory.mkdir(parents=True, exist_ok=True)
        digest = save_state(directory / WEIGHTS, self.flow)
        write_atomic(directory / META, json.dumps(dict(self.meta, sha256=digest), indent=1))


def train_phi_npe(pairs: np.ndarray, u: np.ndarray, config: PhiNpeConfig) -> tuple:
    """Train q(u | Phi_corr, T) on a bank's pairs (shape (n, 2)) and parameters (n, 3).

    Returns:
        The flow (sbi's estimator, identity embedding) and the training history.
    """
    x, u = torch.as_tensor(pairs), torch.as_tensor(u, dtype=torch.float32)
    torch.manual_seed(config.training.seed)
    flow = build_flow(torch.nn.Identity(), config.flow, u[:4096], x[:2])
    history = train(flow, TrainingSet(x, u), config.training)
    return flow.eval(), history


def load_phi_npe(directory: str | os.PathLike, bank_hash: str) -> PhiNpe:
    """A Phi-only estimator saved by :meth:`PhiNpe.save`, checked against the model's bank."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError):
        raise GbsbiError(f"--phi-npe {directory}: no readable {META}") from None
    if meta.get("bank_hash") != bank_hash:
        raise GbsbiError(f"--phi-npe {directory}: trained on another bank than the model's")
    path = directory / WEIGHTS
    if not path.exists() or sha256(path) != meta.get("sha256"):
        raise GbsbiError(f"{path}: missing, or its SHA-256 differs from {META}")
    config = FlowConfig(**meta["flow"])
    flow = build_flow(torch.nn.Identity(), config, torch.rand(64, 3), torch.zeros(2, 2))
    flow.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return PhiNpe(flow.eval(), meta, False)


def phi_npe_for(model: TrainedModel, bank: str | os.PathLike | None = None,
                reuse: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                log: Callable[[str], None] = print) -> PhiNpe:
    """The Phi-only estimator of a model: reused from ``reuse``, or trained on the model's bank
    (``bank``, default the path in ``model.json``), which must be the one it was trained on."""
    bank_hash = model.meta["bank"]["content_hash"]
    if reuse is not None:
        return load_phi_npe(reuse, bank_hash)
    bank = bank or model.meta["bank"]["path"]
    if not Path(bank).exists():
        raise GbsbiError(f"the model's bank {bank} is not here; pass --bank BANK.h5 or "
                         "--phi-npe DIR")
    if read_bank_setup(bank).content_hash != bank_hash:
        raise GbsbiError(f"{bank}: not the bank the model was trained on")
    data = bank_inputs(bank, model.spec.inputs, cache=cache)
    pairs, defined = phi_inputs(data.x, model.spec.inputs.bins)
    config = PhiNpeConfig()
    log(f"training the Phi-only NPE on {int(defined.sum())} maps of {bank}")
    flow, history = train_phi_npe(pairs[defined], data.u[defined], config)
    meta = {"format": "gbsbi-phi-npe", "version": 1, **config.to_dict(), "bank": str(bank),
            "bank_hash": bank_hash, "n": int(defined.sum()), "history": history}
    return PhiNpe(flow, meta, True)
