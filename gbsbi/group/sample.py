"""The joint posterior of a group of scans sampled with emcee (docs/inference.md#group-posteriors).

log p(z | x_1 .. x_n) = sum_i log q(u_i(z) | x_i) + const on the support of the group's prior
(:mod:`gbsbi.group.law`), -inf outside. emcee's affine-invariant ensemble samples it in
unbounded coordinates y = logit(w), w the unit box of :meth:`GroupModel.from_box` (which
turns the support's curved edge under the Arrhenius law into a face of the box), with the
log-Jacobians of both maps added to the density: a posterior against an edge of the prior (a
c near its largest value, a D near the largest the prior allows) is then a smooth tail
instead of a wall the ensemble's moves bounce off. The run goes on until it is 10
autocorrelation times long and, after a burn-in of 2 tau, every coordinate has a bulk ESS of
400 and an R-hat of at most 1.05 (Vehtari et al. 2021, the walkers as chains; or
``max_steps``); it discards 2 tau
and thins by tau / 2; the walkers are split into four chains, and ArviZ's R-hat and ESS are
those of z.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from gbsbi.errors import GbsbiError
from gbsbi.group.config import CHAINS, GroupSettings
from gbsbi.group.law import GroupModel
from gbsbi.validation.crosscheck import EmceeConfig, chain_diagnostics, run_emcee


@dataclass(frozen=True)
class GroupDraws:
    """A group's posterior draws.

    Attributes:
        z: parameter vectors, shape (chains, draws, dim).
        log_likelihood: log q(u_i(z) | x_i) of each scan at each draw, shape
            (chains, draws, n).
        rhat, ess_bulk: ArviZ's R-hat and bulk ESS per parameter of z (walkers as chains).
        tau: emcee's autocorrelation time per coordinate of the sampler (y), in steps.
        steps: the run's length.
        converged: whether it reached the stopping rule before ``max_steps``.
        seconds: wall time.
    """

    z: np.ndarray
    log_likelihood: np.ndarray
    rhat: np.ndarray
    ess_bulk: np.ndarray
    tau: np.ndarray
    steps: int
    converged: bool
    seconds: float


def _start(log_prob: Callable[[np.ndarray], np.ndarray], walkers: int, dim: int,
           rng: np.random.Generator) -> np.ndarray:
    """Walkers spread over the box: the most probable of candidates drawn uniformly from it
    (50 per walker), so that each starts where the density is finite; as y."""
    candidates = logit(np.clip(rng.random((50 * walkers, dim)), 1e-6, 1 - 1e-6))
    values = log_prob(candidates)
    finite = np.isfinite(values)
    if finite.sum() < walkers:
        raise GbsbiError("no parameters of the group's prior reproduce its scans (every draw "
                         "sends some scan outside the per-scan prior, or has zero density); "
                         "widen the priors of D_ref and Ea")
    best = np.argsort(np.where(finite, values, -np.inf))[::-1][:walkers]
    return candidates[best]


def sample_group(model: GroupModel, log_likelihood: Callable[[np.ndarray], np.ndarray],
                 settings: GroupSettings) -> GroupDraws:
    """Sample the group's posterior (module docstring).

    Args:
        model: the group's parameters and law.
        log_likelihood: each scan's log q(u_i | x_i), (m, n, 3) -> (m, n)
            (:func:`gbsbi.inference.npe.likelihood.scan_log_likelihood`).
        settings: the run.
    """
    def to_z(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z and log |dz / dy| of sampler coordinates y, shape (m, dim)."""
        z, log_jacobian = model.from_box(expit(y))
        # log |dw / dy| of the logistic map, log w + log(1 - w), without cancellation
        return z, log_jacobian - (np.logaddexp(0, -y) + np.logaddexp(0, y)).sum(axis=1)

    def log_prob(y: np.ndarray) -> np.ndarray:
        z, log_jacobian = to_z(y)
        inside = model.inside(z)
        out = np.full(len(z), -np.inf)
        if inside.any():
            out[inside] = (settings.temper * log_likelihood(model.unit(z[inside])).sum(axis=1)
                           + log_jacobian[inside])
        return out

    rng = np.random.default_rng(settings.seed)
    walkers = max(settings.walkers, 2 * model.dim + 2)
    walkers += walkers % CHAINS and CHAINS - walkers % CHAINS  # a multiple of the chains
    config = EmceeConfig(walkers=walkers, check_every=settings.check_every,
                         max_steps=settings.max_steps, tau_factor=settings.tau_factor,
                         min_ess=settings.min_ess, max_rhat=settings.max_rhat)
    names = tuple(f"y{k}" for k in range(model.dim))
    import emcee

    moves = [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]
    result = run_emcee(log_prob, _start(log_prob, walkers, model.dim, rng), config,
                       settings.seed, names, moves)
    per_chain = settings.draws // CHAINS
    walker_z = to_z(result.samples.reshape(-1, model.dim))[0].reshape(result.samples.shape)
    rhat, ess = chain_diagnostics(walker_z)
    # walkers w, w + 4, w + 8, ... make chain w: each chain a mix of walkers over the run
    chains = walker_z.reshape(walkers // CHAINS, CHAINS, -1, model.dim)
    chains = chains.transpose(1, 0, 2, 3).reshape(CHAINS, -1, model.dim)
    pick = np.linspace(0, chains.shape[1] - 1, per_chain).round().astype(int)
    z = chains[:, pick]
    flat = z.reshape(-1, model.dim)
    loglik = log_likelihood(model.unit(flat)).reshape(CHAINS, per_chain, model.n)
    return GroupDraws(z, loglik, rhat, ess, result.tau, result.steps, result.converged,
                      result.seconds)

