r"""The K members of an ensemble of neural spline flows evaluated in one pass
(docs/inference.md#group-posteriors).

A group posterior calls each scan's likelihood thousands of times on a few hundred points. At
that size a flow's cost is the number of its operations, not their arithmetic, so K members
cost K times one. Here the members' transforms run side by side: each layer's networks as one
batched matrix product over the members' stacked weights, each spline once on the members'
points together. The network of a coupling layer of member k, on the coordinates y the layer
passes through unchanged, computes

.. math::

    h_0 = W_x y + (W_c f_k + b), \quad
    h_{j+1} = h_j + (W_2 \mathrm{relu}(W_1 \mathrm{relu}(h_j) + b_1) + b_2)
    \odot \mathrm{sigmoid}(W_g f_k + b_g),

nflows' ``ResidualNet`` with its context split off (the GLU of ``ResidualBlock``: a gate of the
features f_k alone), so that every term of f_k, fixed for a scan, is computed once per scan
instead of once per call; its splines run on every input, those in the linear tails set
aside and put back after, where nflows sorts the inputs by masks (:func:`_spline`). The
values are the members' own, to float32 rounding (a test).

Only the architecture ``gbsbi train`` builds is fused: sbi's NSF (a standardising affine map,
coupling layers of rational-quadratic splines with residual networks, LU-linear maps, a
standard normal base). Any other gives ``None``, and the caller evaluates member by member.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from nflows.distributions.normal import StandardNormal
from nflows.nn.nets.resnet import ResidualNet
from nflows.transforms.base import CompositeTransform
from nflows.transforms.coupling import PiecewiseRationalQuadraticCouplingTransform
from nflows.transforms.lu import LULinear
from nflows.transforms.splines.rational_quadratic import rational_quadratic_spline
from nflows.transforms.standard import PointwiseAffineTransform
from torch import Tensor

from gbsbi.inference.flow import parts

_SPLINE = ("num_bins", "tails", "tail_bound", "min_bin_width", "min_bin_height",
           "min_derivative")


def _stack(layers: list[torch.nn.Linear]) -> tuple[Tensor, Tensor]:
    """The layers' weights transposed, shape (K, in, out), and biases, shape (K, 1, out)."""
    return (torch.stack([layer.weight.T for layer in layers]),
            torch.stack([layer.bias for layer in layers])[:, None])


def _spline(layer: PiecewiseRationalQuadraticCouplingTransform, inputs: Tensor,
            params: Tensor) -> tuple[Tensor, Tensor]:
    """The layer's spline on its transformed features, shape (N, d), with the parameters its
    network gave, shape (N, d (3 bins - 1)): (outputs, log|det| summed over d).

    nflows' linear-tailed spline, computed as it computes it (the bounded spline inside
    [-B, B], the identity outside), but with the inputs outside set to 0 for the spline and
    replaced after, instead of sorted by masks: nflows' values to float32 rounding (1-2 ulp
    where the vectorised arithmetic runs in another order; a test), a third less time. A NaN
    input gives a NaN output, as in nflows."""
    if layer.tails != "linear":
        return layer._coupling_transform_forward(inputs, params)
    bound = layer.tail_bound
    params = params.view(*inputs.shape, -1)
    bins, scale = layer.num_bins, math.sqrt(layer.transform_net.hidden_features)
    derivatives = F.pad(params[..., 2 * bins:], (1, 1),
                        value=math.log(math.exp(1 - layer.min_derivative) - 1))
    inside = (inputs >= -bound) & (inputs <= bound)
    out, logabsdet = rational_quadratic_spline(
        torch.where(inside, inputs, torch.zeros(())), params[..., :bins] / scale,
        params[..., bins:2 * bins] / scale, derivatives, left=-bound, right=bound,
        bottom=-bound, top=bound, min_bin_width=layer.min_bin_width,
        min_bin_height=layer.min_bin_height, min_derivative=layer.min_derivative)
    return (torch.where(inside, out, inputs),
            torch.where(inside, logabsdet, torch.zeros(())).sum(-1))


@dataclass(frozen=True)
class _Coupling:
    """One coupling layer of the K members: the spline of member 0 (the same bins and bounds
    in every member) and the stacked weights of their networks, with the terms of the
    features precomputed per scan."""

    spline: PiecewiseRationalQuadraticCouplingTransform
    initial: tuple[Tensor, Tensor]  # W_x, shape (K, d_id, H); W_c f_k + b, (K, 1, n, H)
    blocks: tuple[tuple[Tensor, Tensor, Tensor, Tensor, Tensor], ...]  # W1, b1, W2, b2, gate
    final: tuple[Tensor, Tensor]

    def __call__(self, u: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """The layer on u, shape (K, m n, 3), the scan index fastest: (outputs, log|det|),
        shapes (K, m n, 3) and (K, m n)."""
        k, points, _ = u.shape
        identity = u[..., self.spline.identity_features]
        moved = u[..., self.spline.transform_features]
        w_x, context = self.initial
        h = torch.bmm(identity, w_x)
        h = (h.view(k, points // n, n, -1) + context).view(k, points, -1)
        for w_1, b_1, w_2, b_2, gate in self.blocks:
            t = torch.baddbmm(b_1, F.relu(h), w_1)
            t = torch.baddbmm(b_2, F.relu(t), w_2)
            h = h + (t.view(k, points // n, n, -1) * gate).view(k, points, -1)
        params = torch.baddbmm(self.final[1], h, self.final[0])
        out, logabsdet = _spline(self.spline, moved.reshape(k * points, -1),
                                 params.reshape(k * points, -1))
        result = torch.empty_like(u)
        result[..., self.spline.identity_features] = identity
        result[..., self.spline.transform_features] = out.view(k, points, -1)
        return result, logabsdet.view(k, points)


def _coupling(layers: list[PiecewiseRationalQuadraticCouplingTransform],
              features: Tensor) -> _Coupling | None:
    """The layer of every member, for the features f_k of the n scans, shape (K, n, F)."""
    first = layers[0]
    nets = [layer.transform_net for layer in layers]
    # (equal shapes and block counts: FusedEnsemble.of has compared every weight)
    if (not all(isinstance(net, ResidualNet) and net.context_features is not None
                for net in nets)
            or any(layer.unconditional_transform is not None for layer in layers)
            or any(block.use_batch_norm or block.activation not in (F.relu, torch.relu)
                   for net in nets for block in net.blocks)
            or any(getattr(layer, name) != getattr(first, name)
                   for layer in layers for name in _SPLINE)
            or any(not torch.equal(layer.identity_features, first.identity_features)
                   for layer in layers)):
        return None
    d_id = len(first.identity_features)
    weights, bias = _stack([net.initial_layer for net in nets])
    context = torch.matmul(features, weights[:, d_id:]) + bias  # (K, n, H)
    blocks = []
    for j in range(len(nets[0].blocks)):
        w_1, b_1 = _stack([net.blocks[j].linear_layers[0] for net in nets])
        w_2, b_2 = _stack([net.blocks[j].linear_layers[1] for net in nets])
        w_g, b_g = _stack([net.blocks[j].context_layer for net in nets])
        gate = torch.sigmoid(torch.matmul(features, w_g) + b_g)[:, None]  # (K, 1, n, H)
        blocks.append((w_1, b_1, w_2, b_2, gate))
    return _Coupling(first, (weights[:, :d_id].contiguous(), context[:, None]), tuple(blocks),
                     _stack([net.final_layer for net in nets]))


@dataclass(frozen=True)
class _Linear:
    """z -> z A_k + b_k of each member: sbi's standardisation of u (A diagonal) or an LU-linear
    map (A = (L U)^T)."""

    weight: Tensor  # A_k, shape (K, d, d)
    bias: Tensor  # b_k, shape (K, 1, d)
    logabsdet: Tensor  # log |det A_k|, shape (K, 1)

    def __call__(self, z: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """The map on z, shape (K, m n, d): (outputs, log|det|), shapes (K, m n, d) and
        (K, 1)."""
        return torch.baddbmm(self.bias, z, self.weight), self.logabsdet


def _linear(layers: list, d: int) -> _Linear | None:
    """The layer of every member as a _Linear on d coordinates, or None for another kind of
    layer."""
    if all(type(t) is PointwiseAffineTransform for t in layers):
        scale = torch.stack([t._scale.expand(d) for t in layers])
        return _Linear(torch.diag_embed(scale), torch.stack([t._shift.expand(d) for t in layers])
                       [:, None], scale.log().sum(-1, keepdim=True))
    if all(type(t) is LULinear for t in layers):
        return _Linear(torch.stack([t.weight().T for t in layers]),
                       torch.stack([t.bias for t in layers])[:, None],
                       torch.stack([t.logabsdet() for t in layers])[:, None])
    return None


def _shapes(transform: CompositeTransform) -> tuple:
    """The kinds of a transform's layers and the shapes of its weights and buffers: equal for
    members whose layers stack."""
    return (tuple(type(t) for t in transform._transforms),
            tuple((name, tuple(v.shape)) for name, v in transform.state_dict().items()))


class FusedEnsemble:
    """log q_k(u | f_k) of the K members at once, for the features f_k of n scans (module
    docstring); made by :meth:`of`."""

    def __init__(self, layers: list[_Linear | _Coupling], members: int) -> None:
        self.layers, self.members = layers, members

    @classmethod
    def of(cls, flows: list[torch.nn.Module], features: Tensor) -> FusedEnsemble | None:
        """The fused members, or None where their architecture is not the one fused here.

        Args:
            flows: the K members, in eval mode (a member in training mode: None).
            features: each member's embedding of the n scans, f_k(x_i), shape (K, n, F).
        """
        flow_parts = [parts(flow) for flow in flows]
        if (any(flow.training for flow in flows)
                or not all(isinstance(p.transform, CompositeTransform)
                           and isinstance(p.distribution, StandardNormal)
                           and len(p.distribution._shape) == 1 for p in flow_parts)
                or len({_shapes(p.transform) for p in flow_parts}) != 1):
            return None
        d = flow_parts[0].distribution._shape[0]
        layers = []
        with torch.no_grad():
            for same in zip(*(p.transform._transforms for p in flow_parts), strict=True):
                if all(type(t) is PiecewiseRationalQuadraticCouplingTransform for t in same):
                    layer = _coupling(list(same), features)
                else:
                    layer = _linear(list(same), d)
                if layer is None:
                    return None
                layers.append(layer)
        return cls(layers, len(flows))

    def __call__(self, u: Tensor) -> Tensor:
        """log q_k(u | f_k) at parameters u in the unit cube, shape (m, n, d): shape
        (K, m, n)."""
        m, n, d = u.shape
        z, total = u.reshape(1, m * n, d), torch.zeros(())
        for layer in self.layers:
            z, logabsdet = layer(z.expand(self.members, -1, -1), n)
            total = total + logabsdet
        log_q = -0.5 * (z ** 2).sum(-1) - 0.5 * d * math.log(2 * math.pi)  # the base N(0, I)
        return (log_q + total).view(self.members, m, n)
