r"""The cross-check with Phi alone (SPEC section 7): emcee against an NPE on (Phi, T).

With the noise-corrected Phi as the only datum, the likelihood is the Phi surrogate's
(:mod:`gbsbi.inference.surrogate`),

.. math::

    p(\Phi_{obs} \mid u, T) = \mathcal N(\Phi_{obs};\ \mu_s(u, T),\ \sigma_s(u, T)^2),

and under the prior u ~ U[0, 1]^3 the posterior p(u | Phi_obs, T) is sampled with emcee's
affine-invariant ensemble (:func:`run_emcee`). Independently, a flow q(u | Phi, T) is trained
on the same bank with gbsbi's loop (:func:`train_phi_npe`). If both are right they agree: a
C2ST (``sbi.utils.metrics.c2st``) near 0.5. The C2ST between the map-based posterior and the
Phi-only one then says how much the map adds beyond Phi (0.5: nothing).

Both sides marginalise the measurement nuisances over the configuration's ranges: the
surrogate's sd holds the replicate and noise scatter of the bank, and the Phi-only NPE learns
from the same bank.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from gbsbi.errors import GbsbiError
from gbsbi.inference.flow import FlowConfig, build_flow
from gbsbi.inference.inputs import SCALARS, InputLayout
from gbsbi.inference.model import _sha256
from gbsbi.inference.surrogate import PhiSurrogate
from gbsbi.inference.training import TrainConfig, TrainingSet, train

NAMES = ("u_D", "u_sigma", "u_c")
PHI_NPE_META, PHI_NPE_WEIGHTS = "phi_npe.json", "phi_npe.pt"


def surrogate_numpy(surrogate: PhiSurrogate) -> Callable[[np.ndarray, np.ndarray], tuple]:
    """The surrogate's forward pass in NumPy (float64): (u (n, 3), t (n,)) -> (mu, sd).

    emcee calls the likelihood once per step for a few dozen walkers; torch's overhead per call
    is then most of the cost, NumPy's a few microseconds.
    """
    layers = [m for m in surrogate.net if isinstance(m, torch.nn.Linear)]
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


def phi_log_likelihood(
    surrogate: PhiSurrogate, phi: float, t_scaled: float
) -> Callable[[np.ndarray], np.ndarray]:
    """log p(Phi_obs | u, T) + log prior for emcee, vectorised: u (walkers, 3) -> (walkers,).

    The prior is uniform on the cube: -inf outside, 0 inside.
    """
    forward = surrogate_numpy(surrogate)

    def log_prob(u: np.ndarray) -> np.ndarray:
        inside = np.all((u >= 0) & (u <= 1), axis=-1)
        out = np.full(len(u), -np.inf)
        if inside.any():
            mu, sd = forward(u[inside], np.full(int(inside.sum()), t_scaled))
            out[inside] = -0.5 * ((phi - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
        return out

    return log_prob


@dataclass(frozen=True)
class EmceeConfig:
    """How emcee is run.

    Attributes:
        walkers: ensemble size.
        check_every: steps between estimates of the autocorrelation time tau.
        max_steps: the most steps.
        tau_factor: stop once the chain is longer than this many tau (emcee's advice: 50) and
            tau moved by less than ``tau_change`` since the last estimate.
        tau_change: relative change of tau that counts as settled.
    """

    walkers: int = 32
    check_every: int = 500
    max_steps: int = 30_000
    tau_factor: float = 50.0
    tau_change: float = 0.01

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EmceeResult:
    """Draws of one emcee run after burn-in and thinning, with its diagnostics.

    Attributes:
        samples: u, shape (walkers, draws, 3) (chains, draws, dims for ArviZ).
        tau: integrated autocorrelation time per parameter, in steps.
        steps, burn, thin: the run's length, burn-in (2 max tau) and thinning (min tau / 2).
        rhat, ess_bulk: ArviZ's rank-normalised R-hat and bulk ESS per parameter, the
            walkers as chains.
        converged: whether the chain reached ``tau_factor`` tau with a settled tau.
        seconds: wall time.
    """

    samples: np.ndarray
    tau: np.ndarray
    steps: int
    burn: int
    thin: int
    rhat: np.ndarray
    ess_bulk: np.ndarray
    converged: bool
    seconds: float

    def to_dict(self) -> dict:
        return {"tau": self.tau.tolist(), "steps": self.steps, "burn": self.burn,
                "thin": self.thin, "draws": int(np.prod(self.samples.shape[:2])),
                "rhat": self.rhat.tolist(), "ess_bulk": self.ess_bulk.tolist(),
                "converged": self.converged, "seconds": self.seconds}


def run_emcee(
    log_prob: Callable[[np.ndarray], np.ndarray], start: np.ndarray, config: EmceeConfig,
    seed: int = 0,
) -> EmceeResult:
    """Sample with emcee until the chain is long against its autocorrelation time.

    Args:
        log_prob: vectorised log-density, (walkers, d) -> (walkers,).
        start: initial walkers, shape (walkers, d), all with finite log_prob.
        config: run settings.
        seed: seeds emcee's random state.

    Returns:
        The draws after discarding 2 max(tau) steps and keeping every min(tau) / 2-th, with
        ArviZ's R-hat and bulk ESS (``arviz.from_emcee``).
    """
    import emcee

    begin = time.perf_counter()
    walkers, dim = start.shape
    sampler = emcee.EnsembleSampler(walkers, dim, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()
    old = np.full(dim, np.inf)
    converged = False
    state = start
    while sampler.iteration < config.max_steps:
        state = sampler.run_mcmc(state, config.check_every, progress=False)
        tau = sampler.get_autocorr_time(tol=0)
        settled = np.all(np.abs(old - tau) / tau < config.tau_change)
        if np.all(tau * config.tau_factor < sampler.iteration) and settled:
            converged = True
            break
        old = tau
    tau = sampler.get_autocorr_time(tol=0)
    burn = int(np.ceil(2 * tau.max()))
    thin = max(1, int(0.5 * tau.min()))
    from gbsbi.io.posteriors import _arviz

    az = _arviz()
    data = az.from_emcee(sampler, var_names=list(NAMES[:dim])).sel(
        draw=slice(burn, None, thin))
    rhat = np.array([float(az.rhat(data)[n]) for n in NAMES[:dim]])
    ess = np.array([float(az.ess(data, method="bulk")[n]) for n in NAMES[:dim]])
    samples = np.stack([data.posterior[n].values for n in NAMES[:dim]], axis=-1)
    return EmceeResult(samples, tau, int(sampler.iteration), burn, thin, rhat, ess, converged,
                       time.perf_counter() - begin)


def phi_inputs(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(Phi_corr, scaled T) of network inputs x, shape (n, 2), and whether Phi_corr is
    defined, shape (n,)."""
    scalars = x[:, InputLayout(bins).scalars]
    defined = scalars[:, SCALARS.index("noise_only")] == 0
    pair = scalars[:, [SCALARS.index("phi_corrected"), SCALARS.index("temperature")]]
    return pair.astype(np.float32), defined


@dataclass(frozen=True)
class PhiNpeConfig:
    """The Phi-only posterior estimator: its flow and training."""

    flow: FlowConfig = FlowConfig(transforms=3, hidden=32)
    training: TrainConfig = TrainConfig(epochs=100, batch_size=512, patience=8)

    def to_dict(self) -> dict:
        return {"flow": self.flow.to_dict(), "training": self.training.to_dict()}


def train_phi_npe(pairs: np.ndarray, u: np.ndarray, config: PhiNpeConfig) -> tuple:
    """Train q(u | Phi_corr, T) on a bank's pairs (shape (n, 2)) and parameters (n, 3).

    Returns:
        The flow (sbi's estimator, identity embedding) and the training history.
    """
    x, u = torch.as_tensor(pairs), torch.as_tensor(u, dtype=torch.float32)
    torch.manual_seed(config.training.seed)
    flow = build_flow(torch.nn.Identity(), config.flow, u[:4096], x[:2])
    history = train(flow, TrainingSet(x, u), config.training)
    return flow.eval(), history


def save_phi_npe(directory: Path, flow: torch.nn.Module, config: PhiNpeConfig,
                 provenance: dict, history: list[dict]) -> None:
    """Weights and a JSON with the settings, the bank's hash and the weights' SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(flow.state_dict(), directory / PHI_NPE_WEIGHTS)
    meta = {"format": "gbsbi-phi-npe", "version": 1, **config.to_dict(), **provenance,
            "sha256": _sha256(directory / PHI_NPE_WEIGHTS), "history": history}
    (directory / PHI_NPE_META).write_text(json.dumps(meta, indent=1))


def load_phi_npe(directory: str | os.PathLike, bank_hash: str) -> tuple[torch.nn.Module, dict]:
    """A Phi-only NPE saved by :func:`save_phi_npe`, checked against the model's bank."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / PHI_NPE_META).read_text())
    except (OSError, ValueError):
        raise GbsbiError(f"--phi-npe {directory}: no readable {PHI_NPE_META}") from None
    if meta.get("bank_hash") != bank_hash:
        raise GbsbiError(f"--phi-npe {directory}: trained on another bank than the model's")
    path = directory / PHI_NPE_WEIGHTS
    if not path.exists() or _sha256(path) != meta.get("sha256"):
        raise GbsbiError(f"{path}: missing, or its SHA-256 differs from {PHI_NPE_META}")
    config = PhiNpeConfig(FlowConfig(**meta["flow"]), TrainConfig(**meta["training"]))
    flow = build_flow(torch.nn.Identity(), config.flow, torch.rand(64, 3), torch.zeros(2, 2))
    flow.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return flow.eval(), meta


def c2st_score(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """sbi's C2ST accuracy between two sets of draws of u (0.5: indistinguishable)."""
    from sbi.utils.metrics import c2st

    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    pick_a, pick_b = rng.permutation(len(a))[:n], rng.permutation(len(b))[:n]
    return float(c2st(torch.as_tensor(a[pick_a], dtype=torch.float32),
                      torch.as_tensor(b[pick_b], dtype=torch.float32), seed=seed))
