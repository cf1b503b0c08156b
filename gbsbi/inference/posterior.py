r"""The posterior p(theta | x) of a trained model, in physical units, in sbi's idiom.

The flow models u = to_unit(theta) in [0, 1]^3 (D and c linear, sigma logarithmic over the
prior's ranges) under ``BoxUniform(0, 1)``; sbi's :class:`~sbi.inference.DirectPosterior`
wraps it (attribute :attr:`GbPosterior.unit`, for sbi's diagnostics) and rejects the flow's
samples outside the cube. In physical units,

.. math::

    \log p(\theta \mid x) = \log q(u(\theta) \mid x) + \sum_k \log \left|
        \frac{\partial u_k}{\partial \theta_k} \right|,

with du/dtheta = 1 / (high - low) on a linear scale and 1 / (theta log(high / low)) on a log
scale.

In a notebook::

    from gbsbi.inference import load_posterior
    posterior = load_posterior("model/")
    x = posterior.observe(C, temperature=350.0)       # C: (T, T) or (n, T, T)
    theta = posterior.sample((1000,), x=x[0])         # (1000, 3): D, sigma, c
    posterior.log_prob(theta, x=x[0])                 # (1000,)
"""

from __future__ import annotations

import os

import numpy as np
import torch
from sbi.inference import DirectPosterior
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import conform
from gbsbi.inference.flow import unit_box
from gbsbi.inference.inputs import network_inputs
from gbsbi.inference.model import TrainedModel, load_model
from gbsbi.io.mapsfile import Maps
from simulators.config import Prior


class UnitTransform:
    """theta <-> u for a prior, in torch (float64 inside), shapes (*, 3)."""

    def __init__(self, prior: Prior) -> None:
        specs = prior.parameters
        self.log = torch.tensor([p.scale == "log" for p in specs])
        low = torch.tensor([p.low for p in specs], dtype=torch.float64)
        high = torch.tensor([p.high for p in specs], dtype=torch.float64)
        safe_low = torch.where(self.log, low, torch.ones_like(low))
        self.low = torch.where(self.log, safe_low.log(), low)
        self.width = torch.where(self.log, high.log() - self.low, high - low)

    def to_unit(self, theta: Tensor) -> Tensor:
        theta = torch.as_tensor(theta, dtype=torch.float64)
        scaled = torch.where(self.log, theta.clamp_min(1e-300).log(), theta)
        return (scaled - self.low) / self.width

    def from_unit(self, u: Tensor) -> Tensor:
        scaled = self.low + torch.as_tensor(u, dtype=torch.float64) * self.width
        return torch.where(self.log, scaled.exp(), scaled)

    def log_jacobian(self, theta: Tensor) -> Tensor:
        """sum_k log |du_k / dtheta_k|, shape (*)."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        per = torch.where(self.log, -(theta.clamp_min(1e-300).log()) - self.width.log(),
                          -self.width.log().expand_as(theta))
        return per.sum(-1)


class GbPosterior:
    """p(D, sigma, c | map, T) of a trained model.

    Args:
        model: the trained model.
        device: where to evaluate the flow.
    """

    def __init__(self, model: TrainedModel, device: str = "cpu") -> None:
        if model.flow is None:
            raise GbsbiError(f"{model.directory}: a point model (estimator "
                             f"{model.spec.estimator!r}) has no posterior; use "
                             "gbsbi.inference.point_infer.point_estimates or `gbsbi infer`")
        self.model = model
        self.transform = UnitTransform(model.spec.prior)
        self.unit = DirectPosterior(model.flow, unit_box(device), device=device)
        self.names = model.spec.prior.names

    def observe(self, C: np.ndarray, temperature: float | np.ndarray, q: float | None = None,
                t: np.ndarray | None = None) -> Tensor:
        """Network inputs x of maps on the model's configuration.

        Args:
            C: two-time maps, shape (T, T) or (n, T, T); NaN marks dropped frames.
            temperature: temperature in K, a scalar or shape (n,).
            q: the maps' q in nm^-1 (default: the model's).
            t: frame times in s, shape (T,) (default: the model's window over T frames).

        Returns:
            x, shape (n, D), float32.
        """
        config = self.model.spec.experiment
        C = np.asarray(C, dtype=np.float32)
        C = C[None] if C.ndim == 2 else C
        n, T = C.shape[0], C.shape[-1]
        t = np.arange(T) * config.window / T if t is None else np.asarray(t)
        maps = Maps(C, t, np.broadcast_to(np.asarray(temperature, float), (n,)),
                    np.full(n, config.q if q is None else q))
        maps, _ = conform(maps, config, "maps")
        return torch.as_tensor(network_inputs(maps.C, maps.temperature, self.model.spec.inputs))

    def sample(self, sample_shape: tuple[int, ...], x: Tensor,
               show_progress_bars: bool = False) -> Tensor:
        """Draws theta = (D [nm^2/s], sigma [J/m^2], c), shape (*sample_shape, 3), float64,
        for one input x of shape (D,) or (1, D)."""
        u = self.unit.sample(sample_shape, x=x, show_progress_bars=show_progress_bars)
        return self.transform.from_unit(u)

    def sample_batched(self, sample_shape: tuple[int, ...], x: Tensor) -> Tensor:
        """Draws for each of m inputs x, shape (m, D): theta of shape (*sample_shape, m, 3)."""
        batch = max(1, 100_000 // max(1, len(x)))  # sbi's own cap on draws x inputs at once
        u = self.unit.sample_batched(sample_shape, x=x, show_progress_bars=False,
                                     max_sampling_batch_size=batch)
        return self.transform.from_unit(u)

    def log_prob(self, theta: Tensor, x: Tensor, norm_posterior: bool = True) -> Tensor:
        """log p(theta | x) in physical units (module docstring), shape (n,), for theta of
        shape (n, 3) and one input x; -inf outside the prior.

        With ``norm_posterior`` (sbi's default) the flow's density is renormalised by its mass
        inside the prior, which sbi estimates by sampling: then it varies slightly from call
        to call unless torch's generator is seeded."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        u = self.transform.to_unit(theta)
        inside = ((u >= 0) & (u <= 1)).all(-1)
        log_q = self.unit.log_prob(u.clamp(0, 1).float(), x=x,
                                   norm_posterior=norm_posterior).double()
        out = log_q + self.transform.log_jacobian(theta)
        return torch.where(inside, out, torch.full_like(out, -torch.inf))


def load_posterior(directory: str | os.PathLike, device: str = "cpu") -> GbPosterior:
    """The posterior of the model in ``directory`` (see :class:`GbPosterior`)."""
    return GbPosterior(load_model(directory), device)
