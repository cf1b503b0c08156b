r"""The Phi surrogate s(u, T): mean and standard deviation of the noise-corrected Phi
(docs/inference.md#phi-surrogate).

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

import torch
from torch import Tensor, nn

from gbsbi.inference.config import SurrogateConfig
from gbsbi.inference.loop import TrainingSet, fit, split


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
    """Fit s(u, T) on a bank with the training loop; maps whose corrected Phi is undefined
    (NaN) are left out.

    Args:
        u: parameters in the unit cube, shape (n, 3).
        t: scaled temperatures, shape (n,).
        phi: noise-corrected Phi, shape (n,), NaN where undefined.
        config: size and fit (every epoch runs, the rate decays by a cosine).
        seed: seeds the initial weights, the split and the batch order.

    Returns:
        The fitted surrogate (in eval mode, gradients off) and its figures on the held-out
        part: ``nll`` (mean Gaussian NLL), ``rmse`` of mu_s, ``coverage_68`` (fraction of
        held-out maps within mu_s +- sigma_s; 0.68 when sigma_s is right), ``n_fit``.
    """
    keep = ~torch.isnan(phi)
    x = torch.stack([t[keep], phi[keep]], dim=1)  # (n, 2): the condition T and the target
    u = u[keep]
    training = config.training(seed)
    torch.manual_seed(seed)
    model = PhiSurrogate(config.hidden)

    def losses(u_b: Tensor, x_b: Tensor, _: Tensor | None) -> dict[str, Tensor]:
        mu, sd = model(u_b, x_b[:, 0])
        return {"loss": gaussian_nll(mu, sd, x_b[:, 1]).mean()}

    fit(model, losses, TrainingSet(u, x), training)
    model.eval().requires_grad_(False)
    train_idx, val = split(len(x), training.validation_fraction, seed)
    mu, sd = model(u[val], x[val, 0])
    figures = {
        "nll": float(gaussian_nll(mu, sd, x[val, 1]).mean()),
        "rmse": float((mu - x[val, 1]).square().mean().sqrt()),
        "coverage_68": float(((x[val, 1] - mu).abs() <= sd).float().mean()),
        "n_fit": int(len(train_idx)),
    }
    return model, figures


def numpy_forward(surrogate: PhiSurrogate):  # noqa: ANN201 - a plain function
    """The surrogate's forward pass in NumPy (float64): (u (n, 3), t (n,)) -> (mu, sd).

    emcee calls the likelihood once per step for a few dozen walkers; torch's overhead per call
    is then most of the cost, NumPy's a few microseconds.
    """
    import numpy as np

    layers = [m for m in surrogate.net if isinstance(m, nn.Linear)]
    weights = [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
               for m in layers]

    def forward(u: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.concatenate([2 * u - 1, t[:, None]], axis=1)
        for k, (w, b) in enumerate(weights):
            h = h @ w.T + b
            if k < len(weights) - 1:
                h = h / (1 + np.exp(-h))  # SiLU
        return 1 / (1 + np.exp(-h[:, 0])), np.logaddexp(0, h[:, 1]) + 1e-3

    return forward
