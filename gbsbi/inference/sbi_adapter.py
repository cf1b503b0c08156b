"""The adapter between gbsbi's NumPy simulator and sbi: a torch prior and a simulator callable.

The simulator maps theta = (D, sigma, c), shape (n, 3), to x = (C flattened, Phi, T), shape
(n, T_f^2 + 2), where T_f is the number of frames; the temperature T is the known condition,
drawn uniformly from the prior's range for each simulation (or fixed) and carried in x so that
posteriors condition on it. :func:`split_x` undoes the packing.
"""

from __future__ import annotations

import numpy as np
import torch
from sbi.utils import MultipleIndependent
from torch.distributions import Distribution, ExpTransform, TransformedDistribution, Uniform

from gbsbi.summaries.phi import phi
from simulators.config import ExperimentConfig, ParameterSpec, Prior
from simulators.gb import two_time_maps


def _marginal(spec: ParameterSpec) -> Distribution:
    low = torch.tensor([spec.low], dtype=torch.float32)
    high = torch.tensor([spec.high], dtype=torch.float32)
    if spec.scale == "log":
        base = Uniform(low.log(), high.log(), validate_args=False)
        return TransformedDistribution(base, ExpTransform(), validate_args=False)
    return Uniform(low, high, validate_args=False)


def torch_prior(prior: Prior) -> Distribution:
    """The prior over theta = (D, sigma, c) as a torch distribution that sbi accepts.

    Args:
        prior: the gbsbi prior (linear or log-uniform per parameter).

    Returns:
        A distribution with ``sample((n,))`` of shape (n, 3) and ``log_prob`` of shape (n,).
    """
    return MultipleIndependent([_marginal(p) for p in prior.parameters], validate_args=False)


class Simulator:
    """theta -> x for sbi, with T as a condition carried in x.

    Args:
        config: the experiment configuration.
        prior: the prior (its temperature range is used when ``temperature`` is None).
        temperature: a fixed temperature in K, or None to draw T per simulation.
        seed: seed of the simulator's own random stream; successive calls continue it.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        prior: Prior,
        temperature: float | None = None,
        seed: int = 0,
    ) -> None:
        self.config, self.prior, self.temperature = config, prior, temperature
        self.rng = np.random.default_rng(seed)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """Simulate x for a batch theta of shape (n, 3) (or (3,)); returns shape (n, T^2 + 2)."""
        theta_np = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        n = theta_np.shape[0]
        if self.temperature is None:
            low, high = self.prior.temperature
            temperature = self.rng.uniform(low, high, n)
        else:
            temperature = np.full(n, float(self.temperature))
        maps = two_time_maps(theta_np, temperature, self.config, self.rng)
        x = np.concatenate([maps.reshape(n, -1), phi(maps)[:, None], temperature[:, None]], 1)
        return torch.as_tensor(x, dtype=torch.float32)


def split_x(x: torch.Tensor, n_frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unpack x into maps (n, T, T), Phi (n,) and temperature (n,)."""
    maps = x[..., : n_frames * n_frames].reshape(*x.shape[:-1], n_frames, n_frames)
    return maps, x[..., -2], x[..., -1]
