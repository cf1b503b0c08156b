"""A trained model as a directory (docs/inference.md#the-model-directory).

================  ==============================================================
file              content
================  ==============================================================
``model.json``    format, version, every configuration (experiment, prior,
                  measurement, inputs, networks, training), the content hashes of
                  the bank and of the experimental maps, the SHA-256 of each
                  weights file, the package version
``weights.pt``    state_dict of the estimator's network: the flow (its embedding
                  included), or the point estimator's regressor (embedding, head)
``surrogate.pt``  state_dict of the Phi surrogate
``heads/*.pt``    point estimator with per-group fine-tuning: the state_dict of
                  each group's head (``group_heads`` in ``model.json`` maps each
                  group to its file)
``members/*.pt``  posterior estimator with an ensemble: the state_dict of each
                  member's flow but the first (``weights.pt``)
``history.json``  one record per epoch (losses, validation figures, maps/s)
================  ==============================================================

``estimator`` in ``model.json`` says which kind of model it is; each kind's package builds its
network (:data:`NETWORKS`). Weights are read with ``torch.load(weights_only=True)``: never an
arbitrary pickle. A file whose SHA-256 differs from the one recorded is refused, so is a
directory with a file missing. The model's hash (the SHA-256 of ``model.json``, which holds the
weights' hashes) names the model in every posterior file made with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from gbsbi import __version__
from gbsbi.errors import GbsbiError
from gbsbi.inference.embedding import MapEmbedding
from gbsbi.inference.npe import network as npe_network
from gbsbi.inference.point import network as point_network
from gbsbi.inference.spec import FORMAT, META, VERSION, ModelSpec, read_spec
from gbsbi.inference.surrogate import PhiSurrogate
from gbsbi.io.atomic import atomic_path, write_atomic

WEIGHTS, SURROGATE, HISTORY = "weights.pt", "surrogate.pt", "history.json"
#: Each estimator's network module: ``build(spec, u, x)``, ``embedding(network)`` and
#: ``build_part(spec, name)`` for its extra weights files.
NETWORKS: dict[str, ModuleType] = {"npe": npe_network, "point": point_network}
#: Names an extra weights file may have.
PART = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_-]+\.pt")


@dataclass
class TrainedModel:
    """A model's networks and record.

    Attributes:
        spec: its configuration.
        network: the estimator's network (sbi's flow, or the point regressor), in eval mode.
        surrogate: the Phi surrogate s(u, T), frozen.
        meta: the content of ``model.json``.
        directory: where it was read from, or None.
        parts: extra modules by their weights file (``heads/NAME.pt``), frozen; empty for
            most models.
    """

    spec: ModelSpec
    network: torch.nn.Module
    surrogate: PhiSurrogate
    meta: dict
    directory: Path | None = None
    parts: dict[str, torch.nn.Module] = field(default_factory=dict)

    @property
    def embedding(self) -> MapEmbedding:
        """The feature extractor f, for either kind of model."""
        return NETWORKS[self.spec.kind].embedding(self.network)

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


def build_networks(spec: ModelSpec, u: torch.Tensor | None = None,
                   x: torch.Tensor | None = None) -> tuple[torch.nn.Module, PhiSurrogate]:
    """The estimator's fresh network (``u`` and ``x``: training data for a flow's
    z-scoring and shapes, see :func:`gbsbi.inference.npe.network.build`) and surrogate."""
    return NETWORKS[spec.kind].build(spec, u, x), PhiSurrogate(spec.surrogate.hidden)


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_state(path: Path, module: torch.nn.Module) -> str:
    """Write a module's state_dict (on the CPU) atomically; its SHA-256."""
    with atomic_path(path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, tmp)
    return sha256(path)


def save_model(
    directory: str | os.PathLike,
    spec: ModelSpec,
    network: torch.nn.Module,
    surrogate: PhiSurrogate,
    provenance: dict,
    history: list[dict],
    parts: dict[str, torch.nn.Module] | None = None,
) -> TrainedModel:
    """Write a model directory (created if needed); ``model.json`` is written last.

    Args:
        directory: the model directory.
        spec: the model's configuration.
        network, surrogate: the trained networks.
        provenance: what else ``model.json`` records (hashes and figures of what the model
            saw, an estimator's own entries), stored as they are.
        history: the training history.
        parts: extra modules by their weights file (``heads/NAME.pt``), or None.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hashes = {name: save_state(directory / name, module)
              for name, module in ((WEIGHTS, network), (SURROGATE, surrogate))}
    for name, module in (parts or {}).items():
        if not PART.fullmatch(name):
            raise ValueError(f"weights file {name!r} is not of the form FOLDER/NAME.pt")
        (directory / name).parent.mkdir(exist_ok=True)
        hashes[name] = save_state(directory / name, module)
    write_atomic(directory / HISTORY, json.dumps(history, indent=1))
    meta = {"format": FORMAT, "version": VERSION, "gbsbi_version": __version__,
            **spec.to_dict(), **provenance, "weights_sha256": hashes}
    payload = json.dumps(meta, indent=1, sort_keys=True)
    write_atomic(directory / META, payload)
    meta["model_hash"] = hashlib.sha256(payload.encode()).hexdigest()
    return _trained(spec, network, surrogate, meta, directory, dict(parts or {}))


def _trained(spec: ModelSpec, network: torch.nn.Module, surrogate: PhiSurrogate, meta: dict,
             directory: Path, parts: dict[str, torch.nn.Module]) -> TrainedModel:
    for module in (surrogate, *parts.values()):
        module.eval().requires_grad_(False)
    return TrainedModel(spec, network.eval(), surrogate, meta, directory, parts)


def _load_weights(directory: Path, name: str, meta: dict) -> dict:
    path = directory / name
    if not path.exists():
        raise GbsbiError(f"{directory}: {name} is missing")
    expected = meta.get("weights_sha256", {}).get(name)
    if expected != sha256(path):
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
    spec, meta, model_hash = read_spec(directory)
    network, surrogate = build_networks(spec)
    names = [name for name in meta.get("weights_sha256", {}) if name not in (WEIGHTS,
                                                                              SURROGATE)]
    for name in names:
        if not PART.fullmatch(str(name)):
            raise GbsbiError(f"{directory / META}: names the weights file {name!r}, expected "
                             "FOLDER/NAME.pt")
    missing = [name for name in getattr(NETWORKS[spec.kind], "required_parts",
                                        lambda spec: [])(spec) if name not in names]
    if missing:
        raise GbsbiError(f"{directory / META}: records no weights file {missing[0]} (its "
                         f"configuration asks for it)")
    try:
        parts = {name: NETWORKS[spec.kind].build_part(spec, name) for name in names}
    except ValueError as err:
        raise GbsbiError(f"{directory / META}: {err}") from None
    for module, name in [(network, WEIGHTS), (surrogate, SURROGATE),
                         *((module, name) for name, module in parts.items())]:
        state = _load_weights(directory, name, meta)
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise GbsbiError(f"{directory / name}: does not fit the networks of {META} "
                             f"({first})") from None
    meta["model_hash"] = model_hash
    return _trained(spec, network, surrogate, meta, directory, parts)
