"""Settings of the posterior estimator (no torch): its flow, and the weights of the domain
terms used when unlabelled experimental maps are given."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gbsbi.inference.config import FlowConfig, TrainConfig

KIND = "npe"
#: Most members of an ensemble.
MAX_MEMBERS = 16


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
    #: Trainings mixed into one posterior (an ensemble, docs/inference.md#ensemble): three
    #: had R^2 above one training's and fewer silent misses, in studies/robustness.py.
    members: int = 3


@dataclass(frozen=True)
class NpeConfig:
    """What the posterior estimator adds to a model's configuration: its flow, and how many
    trainings of it (``members``, each from its own initialisation) its posterior mixes with
    equal weights (docs/inference.md#ensemble).

    ``model.json`` keeps the flow's settings under ``flow`` and ``members`` beside it where
    there is more than one (:meth:`to_meta`): a one-member model reads as before ensembles.
    """

    flow: FlowConfig = field(default_factory=FlowConfig)
    members: int = 1
    kind: str = field(default=KIND, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.members, bool) or not isinstance(self.members, int) \
                or not 1 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"members must be a whole number from 1 to {MAX_MEMBERS}, got "
                             f"{self.members!r}")

    def to_meta(self) -> dict:
        return {"flow": self.flow.to_dict(), **({"members": self.members}
                                                 if self.members > 1 else {})}

    @classmethod
    def from_meta(cls, data: dict) -> NpeConfig:
        return cls(FlowConfig(**data["flow"]), int(data.get("members", 1)))


def settings(training: TrainConfig, adapted: bool, coral_weight: float | None = None,
             phi_weight: float | None = None, mmd_weight: float | None = None,
             augment_noise: float | None = None,
             members: int | None = None) -> tuple[TrainConfig, NpeConfig]:
    """The training and estimator settings of ``gbsbi train``: the domain weights as given,
    else :class:`Adaptation`'s when adapting to experimental maps (``adapted``), else 0; the
    noise augmentation and the members as given, else :class:`Robustness`'s."""
    default = Adaptation() if adapted else Adaptation(0.0, 0.0, 0.0)

    def given(value: float | None, fallback: float) -> float:
        return fallback if value is None else value

    return replace(training,
                   coral_weight=given(coral_weight, default.coral_weight),
                   phi_weight=given(phi_weight, default.phi_weight),
                   mmd_weight=given(mmd_weight, default.mmd_weight),
                   augment_noise=given(augment_noise, Robustness().augment_noise),
                   ), NpeConfig(members=int(given(members, Robustness().members)))
