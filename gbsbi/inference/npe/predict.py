r"""The posterior p(theta | x) of a trained model, in physical units, in sbi's idiom, and draws
for many inputs at once.

The flow models u = to_unit(theta) in [0, 1]^3 (D and c linear, sigma logarithmic over the
prior's ranges; docs/inference.md#parameter-space) under ``BoxUniform(0, 1)``; sbi's
:class:`~sbi.inference.DirectPosterior` wraps it (attribute :attr:`GbPosterior.unit`, for sbi's
diagnostics) and rejects the flow's samples outside the cube. In physical units,

.. math::

    \log p(\theta \mid x) = \log q(u(\theta) \mid x) + \sum_k \log \left|
        \frac{\partial u_k}{\partial \theta_k} \right|

(:meth:`simulators.config.Prior.log_jacobian`).

An ensemble (docs/inference.md#ensemble) mixes its K members' posteriors with equal weights,
each renormalised to the cube: p(u | x) = (1/K) sum_k q_k(u | x) / Z_k(x), Z_k the mass of
q_k inside. Draws are sbi's :class:`~sbi.inference.EnsemblePosterior` of the members'
``DirectPosterior``s, shuffled so that any first few come from every member; densities use
Z_k from :func:`mass_inside` with ``NORM_DRAWS`` fixed draws (:func:`member_log_mass`).

A map far outside the model can leave the flow with almost none of its mass inside the cube;
rejection would then never finish (the maps of a real speckle stack of another material did:
0 of 20,000 draws inside). Before rejecting, each input's mass inside is estimated
(:func:`mass_inside`: fixed draws on a generator of its own, so one input gets one answer
wherever it is asked, and the draws are those of sbi's sampler); an input with less than
``MIN_MASS`` gets no draws (NaN), and the misspecification test flags it
(docs/inference.md#outside-the-prior).

In a notebook::

    from gbsbi.inference import load_posterior
    posterior = load_posterior("model/")
    x = posterior.observe(C, temperature=350.0)       # C: (T, T) or (n, T, T)
    theta = posterior.sample((1000,), x=x[0])         # (1000, 3): D, sigma, c
    posterior.log_prob(theta, x=x[0])                 # (1000,)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sbi.inference import DirectPosterior, EnsemblePosterior
from torch import Tensor

from gbsbi.errors import GbsbiError
from gbsbi.inference.data import conform, temperature_warnings
from gbsbi.inference.flow import log_prob_given, parts, unit_box
from gbsbi.inference.inputs import network_inputs
from gbsbi.inference.model import TrainedModel, load_model
from gbsbi.inference.npe.network import members
from gbsbi.io.mapsfile import Maps

#: Least share of an input's posterior mass inside the prior's cube for it to get draws.
MIN_MASS = 1e-3
#: Draws of the first look at an input's mass inside, and of the second look at an input
#: with none inside in the first (fewer than 20 of them inside: less than MIN_MASS).
PILOT, CONFIRM = 256, 20_000


#: Most flow evaluations (draws x inputs) in one call of :func:`mass_inside`.
LOOK_ROWS = 100_000
#: Fixed draws that estimate each ensemble member's mass inside the cube, Z_k (relative
#: error about sqrt((1 - Z) / (Z NORM_DRAWS)): 1 % at Z = 0.9).
NORM_DRAWS = 1024
#: Most inputs whose embedding is computed at once in :func:`mixture_log_q`.
EMBED_BATCH = 1000


@torch.no_grad()
def mass_inside(flow: torch.nn.Module, x: Tensor, draws: int, seed: int = 0) -> Tensor:
    """The share of ``draws`` draws of q(u | x) inside [0, 1]^3 for each input x, shape (n, D)
    -> (n,).

    Common random numbers: the same ``draws`` base-noise vectors (standard normal, the base of
    sbi's flows, from a generator seeded with ``seed``) go through the flow for every input, so
    an input's share depends on the input and the seed alone, not on the other inputs of x,
    the caller's seed or torch's global generator (which is left untouched). At most
    ``LOOK_ROWS`` evaluations at once.
    """
    embedding, transform, _ = parts(flow)
    noise = torch.randn(draws, 3, generator=torch.Generator().manual_seed(seed))
    x = torch.as_tensor(x, dtype=torch.float32)
    out = torch.empty(len(x), dtype=torch.float64)
    step = max(1, LOOK_ROWS // draws)
    for start in range(0, len(x), step):
        features = embedding(x[start:start + step])
        m = len(features)
        u, _ = transform.inverse(noise.repeat(m, 1),
                                 context=features.repeat_interleave(draws, dim=0))
        inside = ((u >= 0) & (u <= 1)).all(-1).reshape(m, draws)
        out[start:start + m] = inside.double().mean(1)
    return out


def outside_prior(flow: torch.nn.Module, x: Tensor) -> Tensor:
    """Whether each input, shape (n, D), has less than ``MIN_MASS`` of its posterior mass
    inside the prior's cube, shape (n,): a first look of ``PILOT`` draws, a second of
    ``CONFIRM`` for the inputs with none inside the first. Fixed draws (:func:`mass_inside`,
    seed 0): one input gets one answer wherever it is asked, alone or among others."""
    out = torch.zeros(len(x), dtype=torch.bool)
    empty = torch.nonzero(mass_inside(flow, x, PILOT) == 0).flatten()
    if len(empty):
        out[empty] = mass_inside(flow, x[empty], CONFIRM) < MIN_MASS
    return out


def outside_any(flows: list[torch.nn.Module], x: Tensor) -> Tensor:
    """:func:`outside_prior` of an ensemble, shape (n,): an input is outside where any member
    puts it outside (that member's rejection would not end)."""
    out = torch.zeros(len(x), dtype=torch.bool)
    for flow in flows:
        out |= outside_prior(flow.eval(), x)
    return out


def scans_outside_prior(model: TrainedModel, x: np.ndarray) -> np.ndarray:
    """:func:`outside_any` of a model's flows for inputs x, shape (n, D), as NumPy (n,)."""
    return outside_any(members(model), torch.as_tensor(x)).numpy()


def member_log_mass(flows: list[torch.nn.Module], x: Tensor) -> Tensor:
    """log Z_k(x), each member's mass inside the cube, shape (K, n), from ``NORM_DRAWS`` fixed
    draws (:func:`mass_inside`, seed 0: one input gets one answer wherever it is asked); at
    least one draw's worth, so that an input outside the prior (no draws) stays finite."""
    x = torch.as_tensor(x, dtype=torch.float32)
    return torch.stack([mass_inside(flow.eval(), x, NORM_DRAWS).clamp_min(1 / NORM_DRAWS).log()
                        for flow in flows]).float()


def shuffled(draws: Tensor) -> Tensor:
    """Draws of shape (m, ...) in a random order along the first axis (torch's generator): an
    ensemble's draws come member by member."""
    return draws[torch.randperm(len(draws))]


class GbPosterior:
    """p(D, sigma, c | map, T) of a trained model.

    Args:
        model: the trained model.
        device: where to evaluate the flow.
    """

    def __init__(self, model: TrainedModel, device: str = "cpu") -> None:
        if model.spec.kind != "npe":
            raise GbsbiError(f"{model.directory}: a point model (estimator "
                             f"{model.spec.kind!r}) has no posterior; use "
                             "gbsbi.inference.point.predict.point_estimates or `gbsbi infer`")
        self.model = model
        self.prior = model.spec.prior
        self.flows = members(model)
        direct = [DirectPosterior(flow, unit_box(device), device=device) for flow in self.flows]
        self.unit = direct[0] if len(direct) == 1 else EnsemblePosterior(direct, device=device)
        self.names = self.prior.names

    def observe(self, C: np.ndarray, temperature: float | np.ndarray, q: float | None = None,
                t: np.ndarray | None = None,
                warn: Callable[[str], None] | None = None,
                age: float | np.ndarray | None = None) -> Tensor:
        """Network inputs x of maps, checked and conformed as ``gbsbi infer`` does: another q
        or window is refused, another number of frames resampled with a note, a temperature
        outside the training range warned about.

        Args:
            C: two-time maps, shape (T, T) or (n, T, T); NaN marks dropped frames.
            temperature: temperature in K, a scalar or shape (n,).
            q: the maps' q in nm^-1 (default: the model's).
            t: frame times in s, shape (T,) (default: the model's window over T frames).
            warn: where notes and warnings go (default: Python's ``warnings.warn``).
            age: each window's age in s, a scalar or shape (n,) (default: 0).

        Returns:
            x, shape (n, D), float32.
        """
        warn = warn or (lambda line: warnings.warn(line, stacklevel=3))
        config = self.model.spec.experiment
        C = np.asarray(C, dtype=np.float32)
        C = C[None] if C.ndim == 2 else C
        n, T = C.shape[0], C.shape[-1]
        t = np.arange(T) * config.window / T if t is None else np.asarray(t)
        maps = Maps(C, t, np.broadcast_to(np.asarray(temperature, float), (n,)),
                    np.full(n, config.q if q is None else q),
                    age=None if age is None else np.broadcast_to(np.asarray(age, float), (n,)))
        maps, notes = conform(maps, config, "maps")
        for line in (*notes, *temperature_warnings(maps, self.prior, "posterior")):
            warn(line)
        return torch.as_tensor(network_inputs(maps.C, maps.temperature, self.model.spec.inputs,
                                              maps.ages))

    def _refuse_outside(self, x: Tensor | np.ndarray) -> None:
        """Raise where one input x, shape (D,) or (1, D), has its posterior outside the prior
        (module docstring)."""
        if outside_any(self.flows, torch.as_tensor(x).reshape(1, -1))[0]:
            raise GbsbiError(f"the posterior of this input has less than {MIN_MASS:.1%} of its "
                             "mass inside the prior: the map is far outside the model, so it "
                             "has no posterior draws (docs/inference.md#outside-the-prior)")

    def sample(self, sample_shape: tuple[int, ...], x: Tensor,
               show_progress_bars: bool = False) -> Tensor:
        """Draws theta = (D [nm^2/s], sigma [J/m^2], c), shape (*sample_shape, 3), float64,
        for one input x of shape (D,) or (1, D).

        Raises:
            GbsbiError: the input's posterior lies outside the prior (module docstring).
        """
        self._refuse_outside(x)
        u = self.unit.sample(sample_shape, x=x, show_progress_bars=show_progress_bars)
        if len(self.flows) > 1:
            u = shuffled(u.reshape(-1, 3)).reshape(u.shape)
        return torch.as_tensor(self.prior.from_unit(u.numpy()))

    def sample_batched(self, sample_shape: tuple[int, ...], x: Tensor) -> Tensor:
        """Draws for each of m inputs x, shape (m, D): theta of shape (*sample_shape, m, 3);
        NaN for an input whose posterior lies outside the prior (module docstring)."""
        x = torch.as_tensor(x)
        inside = ~outside_any(self.flows, x)
        theta = torch.full((*sample_shape, len(x), 3), torch.nan, dtype=torch.float64)
        if inside.any():
            batch = max(1, 100_000 // int(inside.sum()))  # sbi's cap on draws x inputs at once
            u = self.unit.sample_batched(sample_shape, x=x[inside], show_progress_bars=False,
                                         max_sampling_batch_size=batch)
            if len(self.flows) > 1:
                u = shuffled(u.reshape(-1, *u.shape[-2:])).reshape(u.shape)
            theta[..., inside, :] = torch.as_tensor(self.prior.from_unit(u.numpy()))
        return theta

    def unit_draws(self, x: np.ndarray, draws: int, seed: int) -> np.ndarray:
        """Draws of u in the unit cube for one input x, shape (draws, 3), seeded.

        Raises:
            GbsbiError: the input's posterior lies outside the prior (module docstring).
        """
        self._refuse_outside(x)
        torch.manual_seed(seed)
        u = self.unit.sample((draws,), x=torch.as_tensor(x), show_progress_bars=False)
        return (shuffled(u) if len(self.flows) > 1 else u).numpy()

    def log_prob(self, theta: Tensor, x: Tensor, norm_posterior: bool = True) -> Tensor:
        """log p(theta | x) in physical units (module docstring), shape (n,), for theta of
        shape (n, 3) and one input x; -inf outside the prior.

        With ``norm_posterior`` (sbi's default) the flow's density is renormalised by its mass
        inside the prior, which sbi estimates by sampling: then it varies slightly from call
        to call unless torch's generator is seeded. An ensemble's density is always that of
        the draws, the mean of its members' renormalised densities (module docstring), with
        masses from fixed draws; ``norm_posterior`` does not apply."""
        theta = np.asarray(theta, dtype=np.float64)
        inside = self.prior.contains(theta)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.clip(np.nan_to_num(self.prior.to_unit(theta)), 0, 1)
            jacobian = np.where(inside, self.prior.log_jacobian(theta), 0.0)
        u = torch.as_tensor(u, dtype=torch.float32)
        if len(self.flows) == 1:
            log_q = self.unit.log_prob(u, x=x, norm_posterior=norm_posterior).double()
        else:
            x = torch.as_tensor(x, dtype=torch.float32).reshape(1, -1)
            log_q = mixture_log_q(self.flows, u[:, None], x,
                                  member_log_mass(self.flows, x))[:, 0].double()
        out = log_q + torch.as_tensor(jacobian)
        return torch.where(torch.as_tensor(inside), out, torch.full_like(out, -torch.inf))


def load_posterior(directory: str | os.PathLike, device: str = "cpu") -> GbPosterior:
    """The posterior of the model in ``directory`` (see :class:`GbPosterior`)."""
    return GbPosterior(load_model(directory), device)


@torch.no_grad()
def draw_in_cube(
    flow: torch.nn.Module, x: Tensor, draws: int, batch: int = 100,
    progress: Callable[[int], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Draws u ~ q(u | x) inside [0, 1]^3 with their log q, for many inputs, keeping the
    draws inside the prior's cube as sbi's ``DirectPosterior`` does (rejection, repeated
    until every input has its draws).

    Args:
        flow: sbi's estimator of :func:`gbsbi.inference.flow.build_flow`.
        x: inputs, shape (n, D).
        draws: draws per input.
        batch: inputs sampled together.
        progress: called with the number of inputs done after each batch.

    Returns:
        u, shape (draws, n, 3), and log q(u | x), shape (draws, n); torch's global generator
        is the source of randomness. An input that keeps fewer than ``MIN_MASS`` of its
        proposals is given up: its missing draws are NaN.
    """
    us, logs = [], []
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        kept_u = torch.full((draws, len(xb), 3), torch.nan)
        kept_lp = torch.full((draws, len(xb)), torch.nan)
        count = torch.zeros(len(xb), dtype=torch.long)
        proposed = torch.zeros(len(xb), dtype=torch.long)
        ask = draws
        while True:
            # an input that keeps fewer than MIN_MASS of its proposals is given up: NaN draws
            pending = torch.nonzero((count < draws) & (proposed < draws / MIN_MASS)).flatten()
            if not len(pending):
                break
            proposed[pending] += ask
            # nflows' order is (inputs, draws); sbi 0.27's sample_and_log_prob reshapes it
            # without the transpose its sample() has, which pairs draws with the wrong x
            u, lp = flow.net.sample_and_log_prob(ask, context=xb[pending])
            u, lp = u.transpose(0, 1), lp.transpose(0, 1)
            inside = ((u >= 0) & (u <= 1)).all(-1)  # (ask, pending)
            for j, k in enumerate(pending.tolist()):
                good = torch.nonzero(inside[:, j]).flatten()[: draws - count[k]]
                kept_u[count[k]:count[k] + len(good), k] = u[good, j]
                kept_lp[count[k]:count[k] + len(good), k] = lp[good, j]
                count[k] += len(good)
            rate = max(float(inside.float().mean()), 0.05)
            ask = int(min(draws, max(16, (draws - count.min().item()) / rate * 1.2)))
        us.append(kept_u)
        logs.append(kept_lp)
        if progress is not None:
            progress(len(xb))
    return torch.cat(us, 1), torch.cat(logs, 1)


@torch.no_grad()
def log_prob_truth(flow: torch.nn.Module, u: Tensor, x: Tensor, batch: int = 1000) -> Tensor:
    """log q(u_i | x_i) for each pair, shape (n,)."""
    embedding = parts(flow).embedding
    out = [log_prob_given(flow, u[s:s + batch], embedding(x[s:s + batch]))
           for s in range(0, len(x), batch)]
    return torch.cat(out)


def draws_with_density(model: TrainedModel, x: np.ndarray, u: np.ndarray | None, draws: int,
                       seed: int = 0, batch: int = 100,
                       progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Posterior draws of many inputs with log q at each draw and (where ``u`` is given) at
    the truth, as NumPy arrays: ``u`` (draws, n, 3), ``log_q`` (draws, n) and ``log_q_truth``
    (n,). Seeds torch's generator with ``seed``; ``progress`` as :func:`draw_in_cube`'s.

    An ensemble's members give draws / K each (the first the remainder), shuffled; log q is
    the density they are drawn from (module docstring) at every draw and at the truth."""
    torch.manual_seed(seed)
    flows = [flow.eval() for flow in members(model)]
    x_t = torch.as_tensor(x, dtype=torch.float32)
    if len(flows) == 1:
        samples, log_q = draw_in_cube(flows[0], x_t, draws, batch, progress)
    else:
        share = [draws // len(flows) + (k == 0) * (draws % len(flows))
                 for k in range(len(flows))]
        step = None if progress is None else (lambda done: progress(done / len(flows)))
        samples = shuffled(torch.cat([draw_in_cube(flow, x_t, m, batch, step)[0]
                                      for flow, m in zip(flows, share, strict=True)]))
        log_mass = member_log_mass(flows, x_t)
        log_q = mixture_log_q(flows, samples, x_t, log_mass)
    out = {"u": samples.double().numpy(), "log_q": log_q.double().numpy()}
    if u is not None:
        truth = torch.as_tensor(u, dtype=torch.float32)
        out["log_q_truth"] = (log_prob_truth(flows[0], truth, x_t) if len(flows) == 1 else
                              mixture_log_q(flows, truth[None], x_t, log_mass)[0]
                              ).double().numpy()
    return out


@torch.no_grad()
def mixture_log_q(flows: list[torch.nn.Module], u: Tensor, x: Tensor, log_mass: Tensor,
                  batch: int = 100_000) -> Tensor:
    """log (1/K) sum_k q_k(u | x) / Z_k(x) of the K flows at draws u, shape (m, n, 3), for
    inputs x, shape (n, D), with log Z_k given, shape (K, n) (:func:`member_log_mass`); shape
    (m, n), NaN where u is. At most ``batch`` flow evaluations and ``EMBED_BATCH`` embeddings
    at once."""
    m, n = u.shape[:2]
    step = max(1, min(EMBED_BATCH, batch // max(m, 1)))
    out = torch.empty(len(flows), m, n)
    for k, flow in enumerate(flows):
        embedding = parts(flow).embedding
        for start in range(0, n, step):
            features = embedding(x[start:start + step])
            chunk = u[:, start:start + step]
            out[k, :, start:start + step] = log_prob_given(
                flow, chunk.reshape(-1, 3), features.repeat(m, 1)).reshape(chunk.shape[:2])
    return mix(out, log_mass)


def mix(log_q: Tensor, log_mass: Tensor) -> Tensor:
    """log (1/K) sum_k q_k / Z_k from the members' log q_k, shape (K, m, n), and log Z_k,
    shape (K, n): shape (m, n)."""
    return torch.logsumexp(log_q - log_mass[:, None, :], dim=0) - np.log(len(log_q))


def posterior_draws(model: TrainedModel, x: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """Draws theta of each input, shape (draws, n, 3), physical units, seeded."""
    torch.manual_seed(seed)
    return GbPosterior(model).sample_batched((draws,), torch.as_tensor(x)).numpy()
