r"""The domain terms of training against unlabelled experimental maps: CORAL and the Phi term
(docs/inference.md#objective).

CORAL compares two sets of feature vectors by their first two moments (Sun and Saenko 2016;
the source paper's Eq. 12),

.. math::

    \mathrm{CORAL}(a, b) = \lVert \bar a - \bar b \rVert^2
        + \frac{\lVert \operatorname{cov}(a) - \operatorname{cov}(b) \rVert_F^2}{4 d^2}

with d the feature size and cov the unbiased sample covariance. The Phi term asks parameters
inferred for experimental maps to reproduce their measured noise-corrected Phi through the
frozen surrogate mu_s (Eqs. 13-15),

.. math::

    L_\Phi = \operatorname{mean}_e\, (\mu_s(u_e, T_e) - \Phi_e)^2,

over the maps whose corrected Phi is defined (a map of nothing but noise has none), with u_e
the posterior estimator's reparameterised draws or the point estimator's estimates.

The MMD of NPE-RS (Huang et al. 2023) compares the two sets of embeddings by a Gaussian
kernel k(a, b) = exp(-|a - b|^2 / (2 h^2)) with the median heuristic's bandwidth h:

.. math::

    \mathrm{MMD}^2(a, b) = \overline{k(a, a')} + \overline{k(b, b')} - 2\, \overline{k(a, b)}

(the biased V-statistic: never negative, 0 for identical sets).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gbsbi.inference.inputs import SCALARS, InputLayout
from gbsbi.inference.surrogate import PhiSurrogate

_PHI = SCALARS.index("phi_corrected")
_NOISE_ONLY = SCALARS.index("noise_only")
_T = SCALARS.index("temperature")


def covariance(a: Tensor) -> Tensor:
    """Unbiased sample covariance of features a, shape (n, d) with n >= 2; returns (d, d)."""
    centred = a - a.mean(dim=0, keepdim=True)
    return centred.T @ centred / (a.shape[0] - 1)


def coral(a: Tensor, b: Tensor) -> Tensor:
    """CORAL distance between features a, shape (n_a, d), and b, shape (n_b, d); a scalar.

    Both sets need at least two vectors. It is 0 for identical sets and differentiable in
    both.
    """
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"CORAL needs at least 2 vectors per set, got {a.shape[0]} and "
                         f"{b.shape[0]}")
    d = a.shape[1]
    mean_term = (a.mean(dim=0) - b.mean(dim=0)).square().sum()
    cov_term = (covariance(a) - covariance(b)).square().sum() / (4 * d * d)
    return mean_term + cov_term


def phi_defined(x_e: Tensor, layout: InputLayout) -> Tensor:
    """Whether each experimental input's corrected Phi is defined, shape (m,), bool."""
    return x_e[:, layout.scalars][:, _NOISE_ONLY] == 0


def phi_residual(u: Tensor, x_e: Tensor, layout: InputLayout,
                 surrogate: PhiSurrogate) -> Tensor:
    """L_Phi (module docstring) over the maps whose corrected Phi is defined.

    Args:
        u: parameters in the unit cube for the m maps, shape (..., m, 3): one estimate per
            map, or draws (s, m, 3).
        x_e: the maps' network inputs, shape (m, D) (Phi and T are read from the scalars).
        layout: where the scalars sit in x.
        surrogate: the frozen surrogate s(u, T).

    Returns:
        A scalar, the mean over those maps (and draws); 0 when no map has a defined Phi.
    """
    usable = phi_defined(x_e, layout)
    if not usable.any():
        return u.new_zeros(())
    scalars = x_e[usable][:, layout.scalars]
    u = u[..., usable, :]
    mu, _ = surrogate(u, scalars[:, _T].expand(u.shape[:-1]))
    return (mu - scalars[:, _PHI]).square().mean()


def mmd(a: Tensor, b: Tensor) -> Tensor:
    """MMD^2 between features a, shape (n_a, d), and b, shape (n_b, d) (module docstring);
    a scalar, differentiable in both; the bandwidth is the median distance, not
    differentiated."""
    both = torch.cat([a, b])
    distances = torch.cdist(both, both).square()
    h2 = distances.detach()[distances.detach() > 0].median().clamp_min(1e-12) / 2
    kernel = torch.exp(-distances / (2 * h2))
    n = len(a)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()
