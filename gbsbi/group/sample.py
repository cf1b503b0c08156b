"""The joint posterior of a group of scans sampled with emcee (docs/inference.md#group-posteriors).

log p(z | x_1 .. x_n) = sum_i log q(u_i(z) | x_i) + const on the support of the group's prior
(:mod:`gbsbi.group.law`), -inf outside. emcee's affine-invariant ensemble runs until it is 30
autocorrelation times long with tau settled to 5 % (or ``max_steps``), discards 2 tau, thins
by tau / 2; the walkers are split into four chains for ArviZ's R-hat and ESS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.group.config import CHAINS, GroupSettings
from gbsbi.group.law import GroupModel
from gbsbi.validation.crosscheck import EmceeConfig, run_emcee


@dataclass(frozen=True)
class GroupDraws:
    """A group's posterior draws.

    Attributes:
        z: parameter vectors, shape (chains, draws, dim).
        log_likelihood: log q(u_i(z) | x_i) of each scan at each draw, shape
            (chains, draws, n).
        rhat, ess_bulk: ArviZ's R-hat and bulk ESS per parameter of z (walkers as chains).
        tau: emcee's autocorrelation time per parameter, in steps.
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


def _start(model: GroupModel, log_prob: Callable[[np.ndarray], np.ndarray], walkers: int,
           rng: np.random.Generator) -> np.ndarray:
    """Walkers spread over the support: the most probable of candidates drawn from the prior
    (50 per walker), so that each starts where the density is finite."""
    candidates = rng.random((50 * walkers, model.dim))
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
    def log_prob(z: np.ndarray) -> np.ndarray:
        inside = model.inside(z)
        out = np.full(len(z), -np.inf)
        if inside.any():
            out[inside] = log_likelihood(model.unit(z[inside])).sum(axis=1)
        return out

    rng = np.random.default_rng(settings.seed)
    walkers = max(settings.walkers, 2 * model.dim + 2)
    walkers += walkers % CHAINS and CHAINS - walkers % CHAINS  # a multiple of the chains
    config = EmceeConfig(walkers=walkers, check_every=settings.check_every,
                         max_steps=settings.max_steps, tau_factor=settings.tau_factor,
                         tau_change=settings.tau_change)
    names = tuple(f"z{k}" for k in range(model.dim))
    result = run_emcee(log_prob, _start(model, log_prob, walkers, rng), config, settings.seed,
                       names)
    per_chain = settings.draws // CHAINS
    # walkers w, w + 4, w + 8, ... make chain w: each chain a mix of walkers over the run
    chains = result.samples.reshape(walkers // CHAINS, CHAINS, -1, model.dim)
    chains = chains.transpose(1, 0, 2, 3).reshape(CHAINS, -1, model.dim)
    pick = np.linspace(0, chains.shape[1] - 1, per_chain).round().astype(int)
    z = chains[:, pick]
    flat = z.reshape(-1, model.dim)
    loglik = log_likelihood(model.unit(flat)).reshape(CHAINS, per_chain, model.n)
    return GroupDraws(z, loglik, result.rhat, result.ess_bulk, result.tau, result.steps,
                      result.converged, result.seconds)
