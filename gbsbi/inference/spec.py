"""What fixes a trained model (its configuration), and the one reader of ``model.json``.

No torch here: commands that need only a model's configuration (``gbsbi ppc``) read it without
loading the networks, through the same checks as :func:`gbsbi.inference.model.load_model`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from gbsbi.errors import GbsbiError
from gbsbi.inference.config import EmbeddingConfig, SurrogateConfig, TrainConfig
from gbsbi.inference.inputs import InputConfig
from gbsbi.inference.npe.config import NpeConfig
from gbsbi.inference.point.config import PointConfig
from simulators.config import (
    SINGLE_BOUNDARY,
    ConfigError,
    ExperimentConfig,
    MeasurementPrior,
    Prior,
    SamplePrior,
)

FORMAT = "gbsbi-model"
VERSION = 1
META = "model.json"
#: The estimators' settings by the name ``model.json`` records under ``estimator``.
ESTIMATORS: dict[str, type] = {"npe": NpeConfig, "point": PointConfig}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that fixes a model's networks and what they were trained for.

    Attributes:
        experiment, prior, nuisance: the simulations' configuration.
        sample: the sample nuisances of the bank (a polycrystal's boundaries).
        inputs: how maps are reduced before the network.
        embedding: the map embedding's sizes.
        surrogate: the Phi surrogate's size and fit.
        training: the training settings (of the first stage, for an estimator in stages).
        estimator: the estimator's own settings (:data:`ESTIMATORS`).
    """

    experiment: ExperimentConfig
    prior: Prior
    nuisance: MeasurementPrior
    inputs: InputConfig
    embedding: EmbeddingConfig
    surrogate: SurrogateConfig
    training: TrainConfig
    estimator: NpeConfig | PointConfig
    sample: SamplePrior = SINGLE_BOUNDARY

    @property
    def kind(self) -> str:
        """``npe`` (the posterior estimator) or ``point`` (the paper's regressor)."""
        return self.estimator.kind

    def to_dict(self) -> dict:
        return {
            "estimator": self.kind, "experiment": self.experiment.to_dict(),
            "prior": self.prior.to_dict(), "measurement": self.nuisance.to_dict(),
            "sample": self.sample.to_dict(),
            "inputs": self.inputs.to_dict(), "embedding": self.embedding.to_dict(),
            "surrogate": self.surrogate.to_dict(), "training": self.training.to_dict(),
            **self.estimator.to_meta(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        kind = str(data["estimator"])
        if kind not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {kind!r}")
        return cls(
            experiment=ExperimentConfig.from_dict(data["experiment"]),
            prior=Prior.from_record(data["prior"]),
            nuisance=MeasurementPrior.from_record(data["measurement"]),
            inputs=InputConfig(**data["inputs"]),
            embedding=EmbeddingConfig(**data["embedding"]),
            surrogate=SurrogateConfig(**data["surrogate"]),
            training=TrainConfig(**data["training"]),
            estimator=ESTIMATORS[kind].from_meta(data),
            sample=SamplePrior.from_record(data.get("sample")),
        )


def read_meta(directory: str | os.PathLike) -> tuple[dict, str]:
    """``model.json`` of a model directory, checked, and its SHA-256 (the model's hash).

    Raises:
        GbsbiError: no such directory, no or unreadable ``model.json``, another format or
            version.
    """
    directory = Path(directory)
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


def read_spec(directory: str | os.PathLike) -> tuple[ModelSpec, dict, str]:
    """A model's configuration, ``model.json`` and hash, without its networks."""
    meta, model_hash = read_meta(directory)
    try:
        spec = ModelSpec.from_dict(meta)
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise GbsbiError(f"{Path(directory) / META}: its configuration is not readable "
                         f"({err})") from None
    return spec, meta, model_hash
