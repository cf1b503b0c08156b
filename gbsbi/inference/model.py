"""A trained model as a directory (SPEC section 6, Artefacts).

================  ==============================================================
file              content
================  ==============================================================
``model.json``    format, version, every configuration (experiment, prior,
                  measurement, inputs, networks, training), the content hashes of
                  the bank and of the experimental maps, the SHA-256 of each
                  weights file, the package version
``weights.pt``    state_dict of the flow (its embedding included)
``surrogate.pt``  state_dict of the Phi surrogate
``history.json``  one record per epoch (losses, validation NLL, maps/s)
================  ==============================================================

Weights are read with ``torch.load(weights_only=True)``: never an arbitrary pickle. A file
whose SHA-256 differs from the one recorded is refused, so is a directory with a file missing.
The model's hash (the SHA-256 of ``model.json``, which holds the weights' hashes) names the
model in every posterior file made with it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gbsbi import __version__
from gbsbi.errors import GbsbiError
from gbsbi.inference.embedding import EmbeddingConfig, MapEmbedding
from gbsbi.inference.flow import FlowConfig, build_flow
from gbsbi.inference.inputs import InputConfig, InputLayout
from gbsbi.inference.surrogate import PhiSurrogate, SurrogateConfig
from gbsbi.inference.training import TrainConfig
from simulators.config import ConfigError, ExperimentConfig, MeasurementPrior, Prior

FORMAT = "gbsbi-model"
VERSION = 1
META, WEIGHTS, SURROGATE, HISTORY = "model.json", "weights.pt", "surrogate.pt", "history.json"


@dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes a model's networks and what they were trained for."""

    experiment: ExperimentConfig
    prior: Prior
    nuisance: MeasurementPrior
    inputs: InputConfig
    embedding: EmbeddingConfig
    flow: FlowConfig
    surrogate: SurrogateConfig
    training: TrainConfig
    estimator: str = "npe"

    def to_dict(self) -> dict:
        return {
            "estimator": self.estimator, "experiment": self.experiment.to_dict(),
            "prior": self.prior.to_dict(), "measurement": self.nuisance.to_dict(),
            "inputs": self.inputs.to_dict(), "embedding": self.embedding.to_dict(),
            "flow": self.flow.to_dict(), "surrogate": self.surrogate.to_dict(),
            "training": self.training.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        parts = {"inputs": InputConfig, "embedding": EmbeddingConfig, "flow": FlowConfig,
                 "surrogate": SurrogateConfig, "training": TrainConfig}
        return cls(
            experiment=ExperimentConfig.from_dict(data["experiment"]),
            prior=Prior.from_dict(data["prior"]),
            nuisance=MeasurementPrior.from_dict(data["measurement"]),
            estimator=str(data["estimator"]),
            **{name: kind(**data[name]) for name, kind in parts.items()},
        )


@dataclass
class TrainedModel:
    """A model's networks and record.

    Attributes:
        spec: its configuration.
        flow: the flow q(u | x) with its embedding (sbi's estimator), in eval mode.
        surrogate: the Phi surrogate s(u, T), frozen.
        meta: the content of ``model.json``.
        directory: where it was read from, or None.
    """

    spec: ModelSpec
    flow: torch.nn.Module
    surrogate: PhiSurrogate
    meta: dict
    directory: Path | None = None

    @property
    def embedding(self) -> MapEmbedding:
        return self.flow.net._embedding_net

    @property
    def hash(self) -> str:
        return str(self.meta.get("model_hash", ""))


def build_networks(
    spec: ModelSpec, u: torch.Tensor | None = None, x: torch.Tensor | None = None
) -> tuple[torch.nn.Module, PhiSurrogate]:
    """Fresh flow (with embedding) and surrogate for ``spec``.

    Args:
        spec: the model's configuration.
        u: training parameters for the flow's z-scoring, shape (n, 3); None for a flow whose
            weights are loaded afterwards.
        x: training inputs, shape (n, D), for the shapes; None likewise.
    """
    size = InputLayout(spec.inputs.bins).size
    u = torch.rand(64, 3) if u is None else u
    x = torch.zeros(2, size) if x is None else x
    embedding = MapEmbedding(spec.inputs.bins, spec.embedding)
    flow = build_flow(embedding, spec.flow, u, x)
    return flow, PhiSurrogate(spec.surrogate.hidden)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def save_model(
    directory: str | os.PathLike,
    spec: ModelSpec,
    flow: torch.nn.Module,
    surrogate: PhiSurrogate,
    provenance: dict,
    history: list[dict],
) -> TrainedModel:
    """Write a model directory (created if needed); ``model.json`` is written last.

    Args:
        directory: the model directory.
        spec: the model's configuration.
        flow, surrogate: the trained networks.
        provenance: hashes and figures of what the model saw (bank, experimental maps,
            surrogate fit), stored as they are.
        history: the training history.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, module in ((WEIGHTS, flow), (SURROGATE, surrogate)):
        tmp = directory / f".{name}.{os.getpid()}.tmp"
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, tmp)
        os.replace(tmp, directory / name)
        hashes[name] = _sha256(directory / name)
    _write_atomic(directory / HISTORY, json.dumps(history, indent=1).encode())
    meta = {"format": FORMAT, "version": VERSION, "gbsbi_version": __version__,
            **spec.to_dict(), **provenance, "weights_sha256": hashes}
    payload = json.dumps(meta, indent=1, sort_keys=True).encode()
    _write_atomic(directory / META, payload)
    meta["model_hash"] = hashlib.sha256(payload).hexdigest()
    return TrainedModel(spec, flow.eval(), surrogate.eval(), meta, directory)


def _read_meta(directory: Path) -> tuple[dict, str]:
    path = directory / META
    if not directory.is_dir():
        raise GbsbiError(f"{directory}: no such model directory")
    try:
        payload = path.read_bytes()
        meta = json.loads(payload)
    except FileNotFoundError:
        raise GbsbiError(f"{directory}: not a model directory ({META} is missing)") from None
    except (OSError, ValueError) as err:
        raise GbsbiError(f"{path}: not a readable model description ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GbsbiError(f"{path}: not a gbsbi model (format {meta.get('format')!r})"
                         if isinstance(meta, dict) else f"{path}: not a gbsbi model")
    if meta.get("version") != VERSION:
        raise GbsbiError(f"{path}: model version {meta.get('version')!r}, this gbsbi reads "
                         f"{VERSION}")
    return meta, hashlib.sha256(payload).hexdigest()


def _load_weights(directory: Path, name: str, meta: dict) -> dict:
    path = directory / name
    if not path.exists():
        raise GbsbiError(f"{directory}: {name} is missing")
    expected = meta.get("weights_sha256", {}).get(name)
    if expected != _sha256(path):
        raise GbsbiError(
            f"{path}: its SHA-256 differs from the one recorded in {META} (the file was "
            "changed or comes from another model); retrain or restore the original"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - weights_only refuses pickled objects
        raise GbsbiError(f"{path}: not a plain state_dict of tensors, refused "
                         f"({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise GbsbiError(f"{path}: not a plain state_dict of tensors, refused")
    return state


def load_model(directory: str | os.PathLike) -> TrainedModel:
    """Read a model directory, checking its format, hashes and weights.

    Raises:
        GbsbiError: a file is missing, changed, not a state_dict, or from another version.
    """
    directory = Path(directory)
    meta, model_hash = _read_meta(directory)
    try:
        spec = ModelSpec.from_dict(meta)
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise GbsbiError(f"{directory / META}: its configuration is not readable ({err})") from None
    flow, surrogate = build_networks(spec)
    for module, name in ((flow, WEIGHTS), (surrogate, SURROGATE)):
        state = _load_weights(directory, name, meta)
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise GbsbiError(f"{directory / name}: does not fit the networks of {META} "
                             f"({first})") from None
    surrogate.requires_grad_(False)
    meta["model_hash"] = model_hash
    return TrainedModel(spec, flow.eval(), surrogate.eval(), meta, directory)
