"""Settings of the point estimator (no torch): the head, the adaptation stage and the
per-group fine-tuning, with the defaults chosen in studies/point_settings.py."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from gbsbi.errors import GbsbiError
from gbsbi.inference.config import TrainConfig

KIND = "point"


@dataclass(frozen=True)
class HeadConfig:
    """Sizes of the MLP head g.

    Attributes:
        hidden: widths of the hidden layers (ReLU after each).
    """

    hidden: tuple[int, ...] = (64, 64)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"head hidden widths must be >= 1, got {self.hidden}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Adaptation:
    """The adaptation stage's defaults with ``--experimental`` (studies/point_settings.py:
    lowest RMSE on a tuning set among settings that keep held-out R^2 within 0.02)."""

    coral_weight: float = 0.1
    phi_weight: float = 10.0
    learning_rate: float = 1e-3
    epochs: int = 10

    def stage(self, vanilla: TrainConfig) -> TrainConfig:
        """Stage 2's settings: stage 1's with these weights, rate and epochs."""
        return replace(vanilla, coral_weight=self.coral_weight, phi_weight=self.phi_weight,
                       learning_rate=self.learning_rate, epochs=self.epochs)


@dataclass(frozen=True)
class FineTuneConfig:
    """Settings of the per-group fine-tuning.

    Attributes:
        steps: Adam steps on all of a group's maps at once.
        learning_rate: Adam's step size.
        layers: how many of the head's last Linear layers are updated.
    """

    steps: int = 50
    learning_rate: float = 1e-4
    layers: int = 2

    def __post_init__(self) -> None:
        for name, ok in {"steps": self.steps >= 1, "learning_rate": self.learning_rate > 0,
                         "layers": self.layers >= 1}.items():
            value = getattr(self, name)
            if not ok or not math.isfinite(value):
                raise GbsbiError(f"fine-tuning setting {name} = {value} is out of range")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PointConfig:
    """What the point estimator adds to a model's configuration.

    Attributes:
        head: the MLP head's sizes.
        adaptation: the settings of stage 2 (positive CORAL or Phi weight), or None for the
            vanilla regressor; stage 1's are the model's ``training``.
        fine_tune: the settings of the per-group fine-tuning, or None for no group heads.

    ``model.json`` keeps them under ``point``, with ``flow`` null (:meth:`to_meta`).
    """

    head: HeadConfig = field(default_factory=HeadConfig)
    adaptation: TrainConfig | None = None
    fine_tune: FineTuneConfig | None = None
    kind: str = field(default=KIND, init=False)

    def __post_init__(self) -> None:
        if self.adaptation is not None and not self.adaptation.adapted:
            raise GbsbiError("the adaptation stage needs a positive CORAL or Phi weight")
        if self.fine_tune is not None and (self.adaptation is None
                                           or self.adaptation.phi_weight <= 0):
            raise GbsbiError("per-group fine-tuning moves the head by the Phi term only (the "
                             "feature extractor is frozen): it needs --experimental and a "
                             "positive --phi-weight")
        if self.fine_tune is not None and self.fine_tune.layers > len(self.head.hidden) + 1:
            raise GbsbiError(f"fine-tuning cannot update the last {self.fine_tune.layers} "
                             f"layers of a head with {len(self.head.hidden) + 1}")

    def stages(self, training: TrainConfig) -> tuple[TrainConfig, ...]:
        """The configurations of stages 1 and (where there is one) 2."""
        return (training,) if self.adaptation is None else (training, self.adaptation)

    def to_dict(self) -> dict:
        return {"head": self.head.to_dict(),
                "adaptation": None if self.adaptation is None else self.adaptation.to_dict(),
                "fine_tune": None if self.fine_tune is None else self.fine_tune.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> PointConfig:
        adaptation, fine = data.get("adaptation"), data.get("fine_tune")
        return cls(HeadConfig(**data["head"]),
                   None if adaptation is None else TrainConfig(**adaptation),
                   None if fine is None else FineTuneConfig(**fine))

    def to_meta(self) -> dict:
        return {"flow": None, "point": self.to_dict()}

    @classmethod
    def from_meta(cls, data: dict) -> PointConfig:
        return cls.from_dict(data["point"])


def settings(
    training: TrainConfig, adapted: bool, coral_weight: float | None = None,
    phi_weight: float | None = None, adapt_learning_rate: float | None = None,
    adapt_epochs: int | None = None, fine_tune_steps: int | None = None,
    fine_tune_layers: int | None = None, fine_tune_groups: bool = False,
) -> tuple[TrainConfig, PointConfig]:
    """The stages of ``gbsbi train --estimator point`` from its flags (None: the default):
    stage 1 is ``training`` without the domain terms; stage 2 (when ``adapted``) is
    :class:`Adaptation`'s, with the flags given; fine-tuning per group where asked."""
    if fine_tune_groups and not adapted:
        raise GbsbiError("--fine-tune-groups needs --experimental MAPS.h5 (the grouped maps to "
                         "fine-tune on)")
    default = Adaptation() if adapted else Adaptation(0.0, 0.0)

    def given(value: float | None, fallback: float) -> float:
        return fallback if value is None else value

    adaptation = Adaptation(given(coral_weight, default.coral_weight),
                            given(phi_weight, default.phi_weight),
                            given(adapt_learning_rate, default.learning_rate),
                            given(adapt_epochs, default.epochs))
    if adaptation.coral_weight == 0 and adaptation.phi_weight == 0:
        adaptation = None
    fine = None
    if fine_tune_groups:
        base = FineTuneConfig()
        fine = FineTuneConfig(steps=given(fine_tune_steps, base.steps),
                              learning_rate=base.learning_rate,
                              layers=given(fine_tune_layers, base.layers))
    vanilla = replace(training, coral_weight=0.0, phi_weight=0.0)
    stage = None if adaptation is None else adaptation.stage(vanilla)
    return vanilla, PointConfig(adaptation=stage, fine_tune=fine)
