"""Settings of the posterior estimator (no torch): its flow, and the weights of the domain
terms used when unlabelled experimental maps are given."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gbsbi.inference.config import FlowConfig, TrainConfig

KIND = "npe"


@dataclass(frozen=True)
class Adaptation:
    """Weights of CORAL, of the Phi term and of the MMD (NPE-RS) with ``--experimental``
    (CORAL and Phi chosen in studies/adaptation_weights.py: larger weights did not help on
    pseudo-experiments; MMD in studies/robustness.py)."""

    coral_weight: float = 0.01
    phi_weight: float = 0.1
    mmd_weight: float = 0.0


@dataclass(frozen=True)
class Robustness:
    """Training against what the simulator lacks, chosen in studies/robustness.py
    (docs/inference.md#robustness): the sd of the noise added to the standardised inputs
    (NNPE). 0.3 had the lowest silent-miss rate of the estimators that keep in-model R^2
    within 0.03 of plain NPE."""

    augment_noise: float = 0.3


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
             phi_weight: float | None = None, mmd_weight: float | None = None,
             augment_noise: float | None = None) -> tuple[TrainConfig, NpeConfig]:
    """The training and estimator settings of ``gbsbi train``: the domain weights as given,
    else :class:`Adaptation`'s when adapting to experimental maps (``adapted``), else 0; the
    noise augmentation as given, else :class:`Robustness`'s."""
    default = Adaptation() if adapted else Adaptation(0.0, 0.0, 0.0)

    def given(value: float | None, fallback: float) -> float:
        return fallback if value is None else value

    return replace(training,
                   coral_weight=given(coral_weight, default.coral_weight),
                   phi_weight=given(phi_weight, default.phi_weight),
                   mmd_weight=given(mmd_weight, default.mmd_weight),
                   augment_noise=given(augment_noise, Robustness().augment_noise),
                   ), NpeConfig()
