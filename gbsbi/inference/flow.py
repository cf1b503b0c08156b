r"""The conditional normalising flow q(u | x), built with sbi's own builder.

``sbi.neural_nets.posterior_nn`` builds a neural spline flow (NSF) over u in [0, 1]^3 whose
condition is the embedding f(x) (passed as sbi's ``embedding_net``, so ``flow.log_prob(u, x)``
and ``flow.sample((n,), x)`` work as in sbi and the flow wraps into sbi's posteriors).
Training also needs log q(u | f) and reparameterised samples u ~ q(u | f) for features f
computed once per batch (CORAL and the Phi term act on the same f): :func:`log_prob_given`
and :func:`sample_given` call the nflows transform and base distribution inside sbi's
estimator with the features directly. Those are sbi's private attributes; :func:`parts` is the
only place that reaches them, and a test fails when sbi moves them.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from sbi.neural_nets import posterior_nn
from sbi.neural_nets.estimators import NFlowsFlow
from torch import Tensor, nn

from gbsbi.inference.config import FlowConfig

# nflows' LU transform calls a deprecated torch function on every inverse; the warning is
# nflows', not the user's.
warnings.filterwarnings("ignore", message=r"torch\.triangular_solve is deprecated")


class FlowParts(NamedTuple):
    """The pieces of sbi's estimator: the embedding f, the transform from u to noise
    (conditioned on f) and the base distribution (conditioned on f)."""

    embedding: nn.Module
    transform: nn.Module
    distribution: nn.Module


def parts(flow: NFlowsFlow) -> FlowParts:
    """The embedding, transform and base distribution inside sbi's estimator (sbi 0.23-0.27:
    ``flow.net._embedding_net``, ``._transform``, ``._distribution``)."""
    net = flow.net
    return FlowParts(net._embedding_net, net._transform, net._distribution)


def build_flow(
    embedding: nn.Module, config: FlowConfig, u: Tensor, x: Tensor
) -> NFlowsFlow:
    """The flow q(u | x) with ``embedding`` as its condition network.

    Args:
        embedding: f, from x (*, D) to features (*, F).
        config: the flow's sizes.
        u: parameters in the unit cube, shape (n, 3), for sbi's z-scoring of u (the
            statistics are buffers, restored when weights are loaded).
        x: inputs, shape (n, D), for the shapes only (x is not z-scored by sbi: the embedding
            standardises it).

    Returns:
        sbi's estimator; ``parts(flow).embedding`` is ``embedding``.
    """
    builder = posterior_nn(
        config.model, z_score_theta="independent", z_score_x="none",
        hidden_features=config.hidden, num_transforms=config.transforms,
        num_bins=config.spline_bins, embedding_net=embedding,
    )
    return builder(u, x)


def log_prob_given(flow: NFlowsFlow, u: Tensor, features: Tensor) -> Tensor:
    """log q(u | f) for parameters u, shape (n, 3), and features f, shape (n, F); shape (n,)."""
    _, transform, distribution = parts(flow)
    noise, logabsdet = transform(u, context=features)
    return distribution.log_prob(noise, context=features) + logabsdet


def sample_given(flow: NFlowsFlow, n: int, features: Tensor) -> Tensor:
    """n reparameterised samples u ~ q(u | f) for each of m feature vectors f, shape (m, F).

    Returns:
        u, shape (n, m, 3), differentiable in the flow's parameters and in f.
    """
    _, transform, distribution = parts(flow)
    m = features.shape[0]
    noise = distribution.sample(n, context=features)  # (m, n, 3)
    context = features.repeat_interleave(n, dim=0)
    u, _ = transform.inverse(noise.reshape(m * n, -1), context=context)
    return u.reshape(m, n, -1).transpose(0, 1)


def unit_box(device: str | torch.device = "cpu") -> torch.distributions.Distribution:
    """The prior of u: ``sbi.utils.BoxUniform`` on [0, 1]^3."""
    from sbi.utils import BoxUniform

    return BoxUniform(torch.zeros(3, device=device), torch.ones(3, device=device))
