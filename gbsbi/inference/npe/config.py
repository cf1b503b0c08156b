"""Settings of the posterior estimator (no torch): its flow, and the weights of the domain
terms used when unlabelled experimental maps are given."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gbsbi.inference.config import FlowConfig, TrainConfig

KIND = "npe"


@dataclass(frozen=True)
class Adaptation:
    """Weights of CORAL and of the Phi term with ``--experimental`` (chosen in
    studies/adaptation_weights.py: larger weights did not help on pseudo-experiments)."""

    coral_weight: float = 0.01
    phi_weight: float = 0.1


@dataclass(frozen=True)
class NpeConfig:
    """What the posterior estimator adds to a model's configuration: its flow.

    ``model.json`` keeps the flow's settings under ``flow`` (:meth:`to_meta`).
    """

    flow: FlowConfig = field(default_factory=FlowConfig)
    kind: str = field(default=KIND, init=False)

    def to_meta(self) -> dict:
        return {"flow": self.flow.to_dict()}

    @classmethod
    def from_meta(cls, data: dict) -> NpeConfig:
        return cls(FlowConfig(**data["flow"]))


def settings(training: TrainConfig, adapted: bool, coral_weight: float | None = None,
             phi_weight: float | None = None) -> tuple[TrainConfig, NpeConfig]:
    """The training and estimator settings of ``gbsbi train``: the domain weights as given,
    else :class:`Adaptation`'s when adapting to experimental maps (``adapted``), else 0."""
    default = Adaptation() if adapted else Adaptation(0.0, 0.0)
    return replace(training,
                   coral_weight=default.coral_weight if coral_weight is None else coral_weight,
                   phi_weight=default.phi_weight if phi_weight is None else phi_weight,
                   ), NpeConfig()
