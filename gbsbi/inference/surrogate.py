r"""The Phi surrogate s(u, T): mean and standard deviation of the noise-corrected Phi
(SPEC section 6).

One boundary is one random realisation and one measurement one draw of photon noise, so Phi
scatters between replicates of the same (u, T); the surrogate is a heteroscedastic Gaussian,

.. math::

    \Phi_{corr} \mid u, T \sim \mathcal N(\mu_s(u, T), \sigma_s(u, T)^2),

fitted on a bank by the Gaussian negative log-likelihood. Over a bank simulated as measured
the noise nuisances (counts, N_pix, beta) are marginalised, so sigma_s holds both the
realisation scatter and the measurement noise under the configuration's ranges. It serves
the Phi-consistency term of training (through mu_s, frozen), the point estimator and the
emcee cross-check (through both).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class SurrogateConfig:
    """Size and fit of the surrogate.

    Attributes:
        hidden: hidden units of each of the two hidden layers.
        epochs: passes over the training part of the bank.
        batch_size: maps per step.
        learning_rate: Adam's step size (decayed by a cosine to 0 over the epochs).
        validation_fraction: share of the bank held out to report the fit.
    """

    hidden: int = 64
    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 3e-3
    validation_fraction: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class PhiSurrogate(nn.Module):
    r"""s(u, T) -> (mu_s, sigma_s).

    Args:
        hidden: hidden units per layer.

    Inputs u have shape (*, 3) (the unit cube), temperatures t shape (*) (scaled to [-1, 1]
    over the prior's range, as in the network inputs); outputs mu_s in (0, 1) and
    sigma_s > 0, each shape (*).
    """

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(4, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, u: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(torch.cat([2 * u - 1, t[..., None]], dim=-1))
        return torch.sigmoid(out[..., 0]), nn.functional.softplus(out[..., 1]) + 1e-3


def gaussian_nll(mu: Tensor, sd: Tensor, y: Tensor) -> Tensor:
    """Per-element negative log-likelihood of y under N(mu, sd^2), same shape as y."""
    return 0.5 * ((y - mu) / sd).square() + sd.log() + 0.5 * math.log(2 * math.pi)


def fit_surrogate(
    u: Tensor, t: Tensor, phi: Tensor, config: SurrogateConfig, seed: int
) -> tuple[PhiSurrogate, dict[str, float]]:
    """Fit s(u, T) on a bank; maps whose corrected Phi is undefined (NaN) are left out.

    Args:
        u: parameters in the unit cube, shape (n, 3).
        t: scaled temperatures, shape (n,).
        phi: noise-corrected Phi, shape (n,), NaN where undefined.
        config: size and fit.
        seed: seeds the initial weights and the batch order.

    Returns:
        The fitted surrogate (in eval mode, gradients off) and its validation figures:
        ``nll`` (mean Gaussian NLL), ``rmse`` of mu_s, ``coverage_68`` (fraction of held-out
        maps within mu_s +- sigma_s; 0.68 when sigma_s is right).
    """
    keep = ~torch.isnan(phi)
    u, t, phi = u[keep], t[keep], phi[keep]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(phi), generator=generator)
    n_val = max(1, int(config.validation_fraction * len(phi)))
    val, fit = order[:n_val], order[n_val:]
    torch.manual_seed(seed)
    model = PhiSurrogate(config.hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    steps = config.epochs * max(1, -(-len(fit) // config.batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for _ in range(config.epochs):
        for batch in fit[torch.randperm(len(fit), generator=generator)].split(config.batch_size):
            mu, sd = model(u[batch], t[batch])
            loss = gaussian_nll(mu, sd, phi[batch]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval().requires_grad_(False)
    mu, sd = model(u[val], t[val])
    figures = {
        "nll": float(gaussian_nll(mu, sd, phi[val]).mean()),
        "rmse": float((mu - phi[val]).square().mean().sqrt()),
        "coverage_68": float(((phi[val] - mu).abs() <= sd).float().mean()),
        "n_fit": int(len(fit)),
    }
    return model, figures
