r"""The paper's point estimator: the map embedding f and an MLP head g
(docs/inference.md#the-point-estimator).

.. math::

    \hat u = g(f(x)) \in [0, 1]^3,

with u = to_unit(theta) (D and c linear, sigma logarithmic over the prior's ranges), f the
same :class:`~gbsbi.inference.embedding.MapEmbedding` as the posterior estimator's and g a
multilayer perceptron ending in a sigmoid, so that every estimate lies in the prior's box (as
the Phi surrogate, which reads u, requires). Per-group fine-tuning replaces the head by a copy
per group whose last layers are trained on (:mod:`gbsbi.inference.point.train`).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from gbsbi.inference.config import EmbeddingConfig
from gbsbi.inference.embedding import MapEmbedding
from gbsbi.inference.inputs import InputLayout
from gbsbi.inference.point.config import HeadConfig
from gbsbi.inference.spec import ModelSpec


class MLPHead(nn.Module):
    r"""g, from features f of shape (*, F) to estimates u_hat of shape (*, 3) in (0, 1).

    Args:
        features: F, the size of the feature vector.
        config: the hidden widths.
    """

    def __init__(self, features: int, config: HeadConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = features
        for width in config.hidden:
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        self.net = nn.Sequential(*layers, nn.Linear(previous, 3), nn.Sigmoid())

    @property
    def linear_layers(self) -> list[nn.Linear]:
        """The Linear layers, from the first to the output layer."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def last_layers(self, k: int) -> list[str]:
        """Names (as in ``state_dict``) of the parameters of the last k Linear layers."""
        count = len(self.linear_layers)
        if not 1 <= k <= count:
            raise ValueError(f"the head has {count} linear layers, cannot select the last {k}")
        index = {id(m): name for name, m in self.net.named_children()}
        chosen = self.linear_layers[-k:]
        return [f"net.{index[id(m)]}.{p}" for m in chosen for p in ("weight", "bias")]

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


class PointRegressor(nn.Module):
    r"""u_hat = g(f(x)), from inputs x of shape (*, D) to estimates of shape (*, 3).

    Args:
        embedding: f, the map embedding (its ``layout`` tells where Phi and T sit in x).
        head: g.
    """

    def __init__(self, embedding: MapEmbedding, head: MLPHead) -> None:
        super().__init__()
        self.embedding = embedding
        self.head = head

    @property
    def layout(self) -> InputLayout:
        return self.embedding.layout

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embedding(x))


def build_regressor(bins: int, embedding_config: EmbeddingConfig, head: HeadConfig,
                    aged: bool = False) -> PointRegressor:
    """A fresh regressor: ``MapEmbedding(bins, embedding_config, aged)`` and an
    :class:`MLPHead`."""
    embedding = MapEmbedding(bins, embedding_config, aged)
    return PointRegressor(embedding, MLPHead(embedding_config.features, head))


@torch.no_grad()
def predict(regressor: PointRegressor, x: Tensor, head: MLPHead | None = None,
            batch: int = 1024) -> Tensor:
    """Estimates u_hat, shape (n, 3), for inputs x, shape (n, D), in eval mode.

    Args:
        regressor: the trained regressor.
        x: network inputs.
        head: a group's head to use instead of the regressor's own, or None.
        batch: inputs evaluated at a time.
    """
    regressor.eval()
    g = regressor.head if head is None else head.eval()
    parts = [g(regressor.embedding(x[i : i + batch])) for i in range(0, len(x), batch)]
    return torch.cat(parts) if parts else x.new_zeros((0, 3))


def build(spec: ModelSpec, u: torch.Tensor | None = None,
          x: torch.Tensor | None = None) -> PointRegressor:
    """A fresh regressor for ``spec`` (``u`` and ``x`` are not needed)."""
    return build_regressor(spec.inputs.bins, spec.embedding, spec.estimator.head,
                           spec.inputs.age is not None)


def embedding(network: PointRegressor) -> MapEmbedding:
    """The feature extractor f of a regressor."""
    return network.embedding


def build_part(spec: ModelSpec, name: str) -> MLPHead:
    """A fresh head for a group's weights file (``heads/NAME.pt``)."""
    return MLPHead(spec.embedding.features, spec.estimator.head)


def head_files(groups: list[str]) -> dict[str, str]:
    """A weights file under ``heads/`` for each group: its name made file-safe, unique by a
    suffix."""
    files: dict[str, str] = {}
    for group in groups:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", group).strip("_") or "group"
        name, k = stem, 1
        while f"heads/{name}.pt" in files.values():
            k += 1
            name = f"{stem}-{k}"
        files[group] = f"heads/{name}.pt"
    return files
