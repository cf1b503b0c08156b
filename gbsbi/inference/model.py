"""A trained model as a directory (SPEC section 6, Artefacts).

================  ==============================================================
file              content
================  ==============================================================
``model.json``    format, version, every configuration (experiment, prior,
                  measurement, inputs, networks, training), the content hashes of
                  the bank and of the experimental maps, the SHA-256 of each
                  weights file, the package version
``weights.pt``    state_dict of the flow (its embedding included), or of the
                  point estimator's regressor (embedding and head)
``surrogate.pt``  state_dict of the Phi surrogate
``heads/*.pt``    point estimator with per-group fine-tuning: the state_dict of
                  each group's head (``group_heads`` in ``model.json`` maps each
                  group to its file)
``history.json``  one record per epoch (losses, validation figures, maps/s)
================  ==============================================================

``estimator`` in ``model.json`` says which kind of model it is: ``npe`` (the posterior
estimator) or ``point`` (the paper's regressor, :mod:`gbsbi.inference.regressor`).

Weights are read with ``torch.load(weights_only=True)``: never an arbitrary pickle. A file
whose SHA-256 differs from the one recorded is refused, so is a directory with a file missing.
The model's hash (the SHA-256 of ``model.json``, which holds the weights' hashes) names the
model in every posterior file made with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gbsbi import __version__
from gbsbi.errors import GbsbiError
from gbsbi.inference.embedding import EmbeddingConfig, MapEmbedding
from gbsbi.inference.flow import FlowConfig, build_flow
from gbsbi.inference.inputs import InputConfig, InputLayout
from gbsbi.inference.point_training import PointConfig
from gbsbi.inference.regressor import MLPHead, PointRegressor, build_regressor
from gbsbi.inference.surrogate import PhiSurrogate, SurrogateConfig
from gbsbi.inference.training import TrainConfig
from simulators.config import ConfigError, ExperimentConfig, MeasurementPrior, Prior

FORMAT = "gbsbi-model"
VERSION = 1
META, WEIGHTS, SURROGATE, HISTORY = "model.json", "weights.pt", "surrogate.pt", "history.json"
HEADS = "heads"
ESTIMATORS = ("npe", "point")


@dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes a model's networks and what they were trained for.

    A point estimator (``estimator = "point"``) has no flow (``flow`` None) and its head and
    later stages in ``point``; ``training`` is then its first (vanilla) stage.
    """

    experiment: ExperimentConfig
    prior: Prior
    nuisance: MeasurementPrior
    inputs: InputConfig
    embedding: EmbeddingConfig
    flow: FlowConfig | None
    surrogate: SurrogateConfig
    training: TrainConfig
    estimator: str = "npe"
    point: PointConfig | None = None

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got "
                             f"{self.estimator!r}")
        if (self.estimator == "point") != (self.point is not None) or \
                (self.estimator == "npe") != (self.flow is not None):
            raise ValueError(f"a {self.estimator} model needs "
                             f"{'point' if self.estimator == 'point' else 'flow'} settings "
                             "and no others")

    def to_dict(self) -> dict:
        data = {
            "estimator": self.estimator, "experiment": self.experiment.to_dict(),
            "prior": self.prior.to_dict(), "measurement": self.nuisance.to_dict(),
            "inputs": self.inputs.to_dict(), "embedding": self.embedding.to_dict(),
            "flow": None if self.flow is None else self.flow.to_dict(),
            "surrogate": self.surrogate.to_dict(), "training": self.training.to_dict(),
        }
        if self.point is not None:
            data["point"] = self.point.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        parts = {"inputs": InputConfig, "embedding": EmbeddingConfig, "flow": FlowConfig,
                 "surrogate": SurrogateConfig, "training": TrainConfig}
        point = data.get("point")
        return cls(
            experiment=ExperimentConfig.from_dict(data["experiment"]),
            prior=Prior.from_dict(data["prior"]),
            nuisance=MeasurementPrior.from_dict(data["measurement"]),
            estimator=str(data["estimator"]),
            point=None if point is None else PointConfig.from_dict(point),
            **{name: None if data[name] is None else kind(**data[name])
               for name, kind in parts.items()},
        )


@dataclass
class TrainedModel:
    """A model's networks and record.

    Attributes:
        spec: its configuration.
        flow: the flow q(u | x) with its embedding (sbi's estimator), in eval mode; None for
            a point estimator.
        surrogate: the Phi surrogate s(u, T), frozen.
        meta: the content of ``model.json``.
        directory: where it was read from, or None.
        regressor: the point estimator's f and g, in eval mode; None for a posterior
            estimator.
        heads: the point estimator's fine-tuned head of each group (may be empty).
    """

    spec: ModelSpec
    flow: torch.nn.Module | None
    surrogate: PhiSurrogate
    meta: dict
    directory: Path | None = None
    regressor: PointRegressor | None = None
    heads: dict[str, MLPHead] = field(default_factory=dict)

    @property
    def network(self) -> torch.nn.Module:
        """What ``weights.pt`` holds: the flow, or the regressor."""
        return self.flow if self.regressor is None else self.regressor

    @property
    def embedding(self) -> MapEmbedding:
        """The feature extractor f, for either kind of model."""
        return self.flow.net._embedding_net if self.regressor is None else \
            self.regressor.embedding

    @property
    def hash(self) -> str:
        return str(self.meta.get("model_hash", ""))

    @torch.no_grad()
    def features(self, x: np.ndarray, batch: int = 1024) -> np.ndarray:
        """The feature vectors f(x), shape (n, F), float32, of inputs x, shape (n, D)."""
        embedding = self.embedding.eval()
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        parts = [embedding(x[i : i + batch]) for i in range(0, len(x), batch)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.spec.embedding.features),
                                                               np.float32)


def build_networks(
    spec: ModelSpec, u: torch.Tensor | None = None, x: torch.Tensor | None = None
) -> tuple[torch.nn.Module, PhiSurrogate]:
    """Fresh flow (with embedding), or regressor for a point estimator, and surrogate.

    Args:
        spec: the model's configuration.
        u: training parameters for the flow's z-scoring, shape (n, 3); None for a flow whose
            weights are loaded afterwards (the regressor needs neither u nor x).
        x: training inputs, shape (n, D), for the shapes; None likewise.
    """
    if spec.point is not None:
        regressor = build_regressor(spec.inputs.bins, spec.embedding, spec.point.head)
        return regressor, PhiSurrogate(spec.surrogate.hidden)
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


def head_files(groups: list[str]) -> dict[str, str]:
    """A file under ``heads/`` for each group: its name made file-safe, unique by a suffix."""
    files: dict[str, str] = {}
    for group in groups:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", group).strip("_") or "group"
        name, k = stem, 1
        while f"{HEADS}/{name}.pt" in files.values():
            k += 1
            name = f"{stem}-{k}"
        files[group] = f"{HEADS}/{name}.pt"
    return files


def _save_state(directory: Path, name: str, module: torch.nn.Module) -> str:
    """Write a module's state_dict to ``directory / name`` atomically; its SHA-256."""
    path = directory / name
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return _sha256(path)


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
    heads: dict[str, MLPHead] | None = None,
) -> TrainedModel:
    """Write a model directory (created if needed); ``model.json`` is written last.

    Args:
        directory: the model directory.
        spec: the model's configuration.
        flow, surrogate: the trained networks (``flow``: the regressor of a point
            estimator).
        provenance: hashes and figures of what the model saw (bank, experimental maps,
            surrogate fit), stored as they are.
        history: the training history.
        heads: a point estimator's fine-tuned head per group, or None.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {name: _save_state(directory, name, module)
              for name, module in ((WEIGHTS, flow), (SURROGATE, surrogate))}
    files = head_files(list(heads or {}))
    if files:
        (directory / HEADS).mkdir(exist_ok=True)
    for group, name in files.items():
        hashes[name] = _save_state(directory, name, heads[group])
    _write_atomic(directory / HISTORY, json.dumps(history, indent=1).encode())
    meta = {"format": FORMAT, "version": VERSION, "gbsbi_version": __version__,
            **spec.to_dict(), **provenance, "weights_sha256": hashes}
    if spec.point is not None:
        meta["group_heads"] = files
    payload = json.dumps(meta, indent=1, sort_keys=True).encode()
    _write_atomic(directory / META, payload)
    meta["model_hash"] = hashlib.sha256(payload).hexdigest()
    return _trained(spec, flow, surrogate, meta, directory, dict(heads or {}))


def _trained(spec: ModelSpec, network: torch.nn.Module, surrogate: PhiSurrogate, meta: dict,
             directory: Path, heads: dict[str, MLPHead]) -> TrainedModel:
    surrogate.eval().requires_grad_(False)
    for head in heads.values():
        head.eval().requires_grad_(False)
    if spec.point is not None:
        return TrainedModel(spec, None, surrogate, meta, directory, network.eval(), heads)
    return TrainedModel(spec, network.eval(), surrogate, meta, directory)


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
    network, surrogate = build_networks(spec)
    files = _group_heads(directory, meta) if spec.point is not None else {}
    heads = {group: build_regressor(spec.inputs.bins, spec.embedding, spec.point.head).head
             for group in files}
    modules = [(network, WEIGHTS), (surrogate, SURROGATE),
               *((heads[group], name) for group, name in files.items())]
    for module, name in modules:
        state = _load_weights(directory, name, meta)
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise GbsbiError(f"{directory / name}: does not fit the networks of {META} "
                             f"({first})") from None
    meta["model_hash"] = model_hash
    return _trained(spec, network, surrogate, meta, directory, heads)


def _group_heads(directory: Path, meta: dict) -> dict[str, str]:
    """The ``group_heads`` of a point model: group -> ``heads/NAME.pt``, checked."""
    files = meta.get("group_heads", {})
    if not isinstance(files, dict):
        raise GbsbiError(f"{directory / META}: 'group_heads' is not a mapping")
    for group, name in files.items():
        if not isinstance(name, str) or not re.fullmatch(rf"{HEADS}/[A-Za-z0-9_-]+\.pt", name):
            raise GbsbiError(f"{directory / META}: group {group!r} names the head file "
                             f"{name!r}, expected {HEADS}/NAME.pt")
    return files
