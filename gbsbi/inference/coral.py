r"""CORAL: the distance between two sets of feature vectors by their first two moments
(Sun and Saenko 2016; SPEC section 4, paper Eq. 12).

.. math::

    \mathrm{CORAL}(a, b) = \lVert \bar a - \bar b \rVert^2
        + \frac{\lVert \operatorname{cov}(a) - \operatorname{cov}(b) \rVert_F^2}{4 d^2}

with d the feature size and cov the unbiased sample covariance.
"""

from __future__ import annotations

from torch import Tensor


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
