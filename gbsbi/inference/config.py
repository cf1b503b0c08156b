"""Configuration of the networks and of their training, as frozen dataclasses (no torch).

Every trained artefact stores these beside its weights (``model.json``); the command line and
the studies read their defaults from here. The estimators' own settings live in their packages
(:mod:`gbsbi.inference.npe.config`, :mod:`gbsbi.inference.point.config`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from gbsbi.errors import GbsbiError

#: Learning-rate schedules of the training loop: constant, or a cosine decay to 0.
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (one stage) of the loop :func:`gbsbi.inference.loop.fit`.

    Attributes:
        epochs: the most passes over the training simulations.
        batch_size: simulations per step.
        learning_rate: Adam's step size.
        validation_fraction: share of the simulations held out for early stopping.
        patience: epochs without a better validation figure before stopping.
        coral_weight: lambda_C (docs/inference.md#objective).
        phi_weight: lambda_Phi.
        phi_samples: flow samples per experimental map for the Phi term.
        experimental_batch: experimental maps per step (all of them when fewer).
        clip_norm: largest gradient norm (as sbi's training does); 0 for no clipping.
        seed: seeds the initial weights, the split and the batch order.
        schedule: ``constant`` or ``cosine`` (the rate decays to 0 over ``epochs``).
        mmd_weight: lambda_MMD, the weight of the MMD between simulated and experimental
            embeddings (NPE-RS, Huang et al. 2023).
        augment_noise: s, the standard deviation of Gaussian noise added to the standardised
            map and lag profile of each training simulation (noise augmentation, NNPE); 0 for
            none.
    """

    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    patience: int = 15
    coral_weight: float = 0.0
    phi_weight: float = 0.0
    phi_samples: int = 8
    experimental_batch: int = 256
    clip_norm: float = 5.0
    seed: int = 0
    schedule: str = "constant"
    mmd_weight: float = 0.0
    augment_noise: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 2,
            "learning_rate": self.learning_rate > 0, "patience": self.patience >= 1,
            "validation_fraction": 0 < self.validation_fraction < 1,
            "coral_weight": self.coral_weight >= 0, "phi_weight": self.phi_weight >= 0,
            "phi_samples": self.phi_samples >= 1,
            "experimental_batch": self.experimental_batch >= 2,
            "clip_norm": self.clip_norm >= 0, "seed": self.seed >= 0,
            "mmd_weight": self.mmd_weight >= 0, "augment_noise": self.augment_noise >= 0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                raise GbsbiError(f"training setting {name} = {value} is out of range")
        if self.schedule not in SCHEDULES:
            raise GbsbiError(f"training setting schedule = {self.schedule!r}, expected one of "
                             f"{', '.join(SCHEDULES)}")

    @property
    def adapted(self) -> bool:
        """Whether training needs unlabelled experimental maps."""
        return self.coral_weight > 0 or self.phi_weight > 0 or self.mmd_weight > 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EmbeddingConfig:
    """Sizes of the map embedding f(x) (:class:`gbsbi.inference.embedding.MapEmbedding`).

    Attributes:
        channels: output channels of the 3 x 3 convolutions, each followed by 2 x 2 average
            pooling; the number of bins R must be divisible by 2 ** len(channels).
        hidden: width of the lag-profile branch and of the joining layer.
        features: F, the size of the feature vector f(x).
    """

    channels: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    features: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FlowConfig:
    """Sizes of a conditional flow q(u | x) (:func:`gbsbi.inference.flow.build_flow`).

    Attributes:
        model: sbi's density estimator name (``nsf`` or ``maf``).
        transforms: number of coupling transforms.
        hidden: hidden units of each transform's conditioner.
        spline_bins: bins of each rational-quadratic spline (``nsf``).
    """

    model: str = "nsf"
    transforms: int = 5
    hidden: int = 64
    spline_bins: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SurrogateConfig:
    """Size and fit of the Phi surrogate (:mod:`gbsbi.inference.surrogate`).

    Attributes:
        hidden: hidden units of each of the two hidden layers.
        epochs: passes over the training part of the bank.
        batch_size: maps per step.
        learning_rate: Adam's step size (decayed by a cosine to 0 over the epochs).
        validation_fraction: share of the bank held out to report the fit.
    """

    hidden: int = 64
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 3e-3
    validation_fraction: float = 0.1

    def training(self, seed: int) -> TrainConfig:
        """The loop's settings: every epoch runs (no early stopping), cosine decay, no
        clipping."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size,
                           learning_rate=self.learning_rate,
                           validation_fraction=self.validation_fraction, patience=self.epochs,
                           clip_norm=0.0, seed=seed, schedule="cosine")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Architecture:
    """The networks shared by every estimator (defaults: the shipped model).

    Attributes:
        bins: R, bins per axis of the reduced map (:mod:`gbsbi.inference.inputs`).
        grading: g, growth of the bin width.
        embedding: the map embedding's sizes.
        surrogate: the Phi surrogate's size and fit.
    """

    bins: int = 32
    grading: float = 2.0
    embedding: EmbeddingConfig = EmbeddingConfig()
    surrogate: SurrogateConfig = SurrogateConfig()
