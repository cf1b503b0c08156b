"""The posterior estimator's network: sbi's flow q(u | x) with the map embedding as its
condition network."""

from __future__ import annotations

import torch
from sbi.neural_nets.estimators import NFlowsFlow

from gbsbi.inference.embedding import MapEmbedding
from gbsbi.inference.flow import build_flow, parts
from gbsbi.inference.spec import ModelSpec


def build(spec: ModelSpec, u: torch.Tensor | None = None,
          x: torch.Tensor | None = None) -> NFlowsFlow:
    """A fresh flow with its embedding.

    Args:
        spec: the model's configuration.
        u: training parameters for the flow's z-scoring, shape (n, 3); None for a flow whose
            weights are loaded afterwards.
        x: training inputs, shape (n, D), for the shapes; None likewise.
    """
    u = torch.rand(64, 3) if u is None else u
    x = torch.zeros(2, spec.inputs.layout.size) if x is None else x
    embedding = MapEmbedding(spec.inputs.bins, spec.embedding, spec.inputs.age is not None)
    return build_flow(embedding, spec.estimator.flow, u, x)


def embedding(network: NFlowsFlow) -> MapEmbedding:
    """The feature extractor f of a flow built by :func:`build`."""
    return parts(network).embedding


def member_file(k: int) -> str:
    """The weights file of member k >= 1 of an ensemble (member 0 is ``weights.pt``)."""
    return f"members/{k}.pt"


def build_part(spec: ModelSpec, name: str) -> torch.nn.Module:
    """A fresh flow for a member's weights file (``members/K.pt``, 1 <= K < members)."""
    if name not in {member_file(k) for k in range(1, spec.estimator.members)}:
        raise ValueError(f"a posterior estimator of {spec.estimator.members} member(s) has no "
                         f"part {name!r}")
    return build(spec)


def required_parts(spec: ModelSpec) -> list[str]:
    """The weights files a model of ``spec`` must have beyond ``weights.pt``: its members'."""
    return [member_file(k) for k in range(1, spec.estimator.members)]


def members(model) -> list[NFlowsFlow]:  # noqa: ANN001 - a TrainedModel (import cycle)
    """The flows of a posterior estimator, member 0 (``model.network``, whose embedding the
    misspecification reference reads) first; one for a model without an ensemble."""
    return [model.network, *(model.parts[member_file(k)]
                             for k in range(1, model.spec.estimator.members))]
