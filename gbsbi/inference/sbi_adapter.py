"""The adapter between gbsbi's NumPy simulator and sbi: the prior and a simulator callable.

sbi sees the parameters as u = to_unit(theta) in [0, 1]^3 (D and c linear, sigma logarithmic,
each over its prior range; docs/inference.md#parameter-space) under ``sbi.utils.BoxUniform(0, 1)``,
so the prior's support is exact: a transformed log-uniform prior has support (0, inf) and sbi would
take sigma = 10 J/m^2 as inside it. The simulator maps u, shape (n, 3), to x = (C flattened, Phi,
T), shape (n, T_f^2 + 2), where T_f is the number of frames; the temperature T is the known
condition, drawn uniformly from the prior's range for each simulation (or fixed), and carried in x
so that posteriors condition on it. :func:`split_x` undoes the packing.

Random numbers. Every call draws its randomness from a fresh stream
``SeedSequence([seed, key])`` whose key comes from NumPy's global random state, which
``sbi.inference.simulate_for_sbi`` seeds per batch (``seed_all_backends``): parallel batches
(joblib workers get copies of the simulator) then draw different numbers, and the whole
simulation is reproducible from simulate_for_sbi's ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch
from sbi.utils import BoxUniform

from gbsbi.summaries.phi import phi
from simulators.config import ExperimentConfig, MeasurementPrior, Prior, SamplePrior
from simulators.measured import measured_maps
from simulators.polycrystal import noiseless_maps


def torch_prior(prior: Prior) -> BoxUniform:
    """The prior of u = to_unit(theta): ``BoxUniform`` on [0, 1]^3.

    Args:
        prior: the gbsbi prior (its ranges fix the map from u to theta).

    Returns:
        A distribution with ``sample((n,))`` of shape (n, 3) and ``log_prob`` of shape (n,),
        0 inside the cube and -inf outside.
    """
    d = len(prior.parameters)
    return BoxUniform(torch.zeros(d), torch.ones(d))


class Simulator:
    """u -> x for sbi, with T as a condition carried in x.

    Args:
        config: the experiment configuration.
        prior: the prior (maps u to theta; its temperature range is used when
            ``temperature`` is None).
        temperature: a fixed temperature in K, or None to draw T per simulation.
        seed: the simulator's own seed, joined to the per-call key (module docstring).
        measurement: ``none`` (noiseless maps) or ``fast`` (measured, nuisances drawn per map
            from ``nuisance``).
        nuisance: ranges of counts, N_pix, beta, drift and dropped frames for ``fast``
            (default: the configuration's, without dropped frames: sbi leaves out every
            simulation with a NaN in x).
        sample: ranges of the sample nuisances (a polycrystal's boundaries), or None for one
            boundary of length L.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        prior: Prior,
        temperature: float | None = None,
        seed: int = 0,
        measurement: str = "none",
        nuisance: MeasurementPrior | None = None,
        sample: SamplePrior | None = None,
    ) -> None:
        if measurement not in ("none", "fast"):
            raise ValueError(f"measurement must be 'none' or 'fast', got {measurement!r}")
        self.config, self.prior, self.temperature = config, prior, temperature
        self.seed, self.measurement = seed, measurement
        self.nuisance = nuisance or MeasurementPrior(dropped=(0.0, 0.0))
        self.sample = sample

    def __call__(self, u: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Simulate x for a batch u of shape (n, 3) (or (3,)); returns shape (n, T^2 + 2)."""
        key = int(np.random.randint(0, 2**63, dtype=np.int64))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, key]))
        theta = self.prior.from_unit(np.atleast_2d(np.asarray(u, dtype=np.float64)))
        n = theta.shape[0]
        if self.temperature is None:
            low, high = self.prior.temperature
            temperature = rng.uniform(low, high, n)
        else:
            temperature = np.full(n, float(self.temperature))
        if self.measurement == "none":
            drawn = None if self.sample is None else self.sample.sample(n, rng)
            maps = noiseless_maps(theta, temperature, self.config, drawn, rng)
        else:
            nuisance = self.nuisance.sample(n, rng)
            if self.sample is not None:
                nuisance |= self.sample.sample(n, rng)
            maps = measured_maps(theta, temperature, self.config, nuisance, "fast",
                                 self.nuisance, rng, halves=False)["C"]
        x = np.concatenate([maps.reshape(n, -1), phi(maps)[:, None], temperature[:, None]], 1)
        return torch.as_tensor(x, dtype=torch.float32)


def split_x(x: torch.Tensor, n_frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unpack x into maps (n, T, T), Phi (n,) and temperature (n,)."""
    maps = x[..., : n_frames * n_frames].reshape(*x.shape[:-1], n_frames, n_frames)
    return maps, x[..., -2], x[..., -1]
