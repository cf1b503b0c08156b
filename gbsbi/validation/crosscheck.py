r"""The cross-check with Phi alone (docs/validation.md#phi-only-cross-check): emcee against an
NPE on (Phi, T).

With the noise-corrected Phi as the only datum, the likelihood is the Phi surrogate's
(:mod:`gbsbi.inference.surrogate`),

.. math::

    p(\Phi_{obs} \mid u, T) = \mathcal N(\Phi_{obs};\ \mu_s(u, T),\ \sigma_s(u, T)^2),

and under the prior u ~ U[0, 1]^3 the posterior p(u | Phi_obs, T) is sampled with emcee's
affine-invariant ensemble (:func:`run_emcee`). Independently, a flow q(u | Phi, T) is trained
on the same bank with gbsbi's loop (:mod:`gbsbi.inference.npe.phi_only`). If both are right
they agree: a C2ST (``sbi.utils.metrics.c2st``) near 0.5. The C2ST between the map-based
posterior and the Phi-only one then says how much the map adds beyond Phi (0.5: nothing).

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

import numpy as np

from gbsbi.errors import GbsbiError

NAMES = ("u_D", "u_sigma", "u_c")


def phi_log_likelihood(
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], phi: float,
    t_scaled: float,
) -> Callable[[np.ndarray], np.ndarray]:
    """log p(Phi_obs | u, T) + log prior for emcee, vectorised: u (walkers, 3) -> (walkers,).

    Args:
        forward: the surrogate in NumPy, (u, t) -> (mu_s, sd_s)
            (:func:`gbsbi.inference.surrogate.numpy_forward`).
        phi: the observed corrected Phi.
        t_scaled: the scan's temperature, scaled as in the network inputs.

    The prior is uniform on the cube: -inf outside, 0 inside.
    """

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
        min_ess: with a positive value, the rule of Vehtari et al. (2021) instead: stop once
            the chain is ``tau_factor`` tau long and, after a burn-in of 2 tau, every
            parameter's bulk ESS (ArviZ, walkers as chains) is at least this and its R-hat
            at most ``max_rhat``.
        max_rhat: see ``min_ess``.
    """

    walkers: int = 32
    check_every: int = 500
    max_steps: int = 30_000
    tau_factor: float = 50.0
    tau_change: float = 0.01
    min_ess: float = 0.0
    max_rhat: float = 1.01

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
        converged: whether the chain met its stopping rule (:class:`EmceeConfig`).
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
    seed: int = 0, names: tuple[str, ...] | None = None, moves: list | None = None,
) -> EmceeResult:
    """Sample with emcee until the chain is long against its autocorrelation time.

    Args:
        log_prob: vectorised log-density, (walkers, d) -> (walkers,).
        start: initial walkers, shape (walkers, d), all with finite log_prob.
        config: run settings.
        seed: seeds emcee's random state.
        names: the parameters' names (default u_D, u_sigma, u_c).
        moves: emcee's proposal moves with their weights (default its stretch move).

    Returns:
        The draws after discarding 2 max(tau) steps and keeping every min(tau) / 2-th, with
        ArviZ's R-hat and bulk ESS (``arviz.from_emcee``).
    """
    import emcee

    begin = time.perf_counter()
    walkers, dim = start.shape
    sampler = emcee.EnsembleSampler(walkers, dim, log_prob, vectorize=True, moves=moves)
    sampler.random_state = np.random.RandomState(seed).get_state()
    old = np.full(dim, np.inf)
    converged = False
    state = start
    while sampler.iteration < config.max_steps:
        state = sampler.run_mcmc(state, config.check_every, progress=False)
        tau = sampler.get_autocorr_time(tol=0)
        long_enough = np.all(tau * config.tau_factor < sampler.iteration)
        if config.min_ess > 0:
            if long_enough and _mixed(sampler, tau, config):
                converged = True
                break
            continue
        settled = np.all(np.abs(old - tau) / tau < config.tau_change)
        if long_enough and settled:
            converged = True
            break
        old = tau
    tau = sampler.get_autocorr_time(tol=0)
    burn = int(np.ceil(2 * tau.max()))
    thin = max(1, int(0.5 * tau.min()))
    from gbsbi.io.posteriors import arviz

    az = arviz()
    names = list(names or NAMES[:dim])
    data = az.from_emcee(sampler, var_names=names).sel(draw=slice(burn, None, thin))
    samples = np.stack([data.posterior[n].values for n in names], axis=-1)
    rhat, ess = chain_diagnostics(samples)
    return EmceeResult(samples, tau, int(sampler.iteration), burn, thin, rhat, ess, converged,
                       time.perf_counter() - begin)


def chain_diagnostics(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's rank-normalised R-hat and bulk ESS of each parameter of z, shape (walkers,
    draws, dim), each walker a chain; each shape (dim,)."""
    from gbsbi.io.posteriors import arviz

    az = arviz()
    data = az.convert_to_dataset({"z": z})
    return (np.asarray(az.rhat(data)["z"].values, dtype=float),
            np.asarray(az.ess(data, method="bulk")["z"].values, dtype=float))


def _mixed(sampler, tau: np.ndarray, config: EmceeConfig) -> bool:  # noqa: ANN001
    """Whether the chain after a burn-in of 2 max(tau) has every bulk ESS >= min_ess and
    every R-hat <= max_rhat (ArviZ, walkers as chains)."""
    chain = sampler.get_chain(discard=int(np.ceil(2 * tau.max())))  # (steps, walkers, dim)
    rhat, ess = chain_diagnostics(np.swapaxes(chain, 0, 1))
    return bool(np.all(ess >= config.min_ess) and np.all(rhat <= config.max_rhat))


def scan_crosscheck(forward, phi_npe, posterior, pair: np.ndarray,  # noqa: ANN001
                    x: np.ndarray, draws: int, config: EmceeConfig,
                    rng: np.random.Generator, seed: int) -> tuple[dict, dict]:
    """One scan's cross-check: emcee on its Phi, the Phi-only NPE, the map's posterior.

    Returns:
        The scan's numbers (emcee's diagnostics and both C2STs) and its draws of u per method.
    """
    from gbsbi.inference.sbi_tools import c2st_score

    phi, t = float(pair[0]), float(pair[1])
    mc = run_emcee(phi_log_likelihood(forward, phi, t), rng.random((config.walkers, 3)), config,
                   seed=seed)
    u_mc = mc.samples.reshape(-1, 3)
    u_phi = phi_npe.sample(pair, draws, seed)
    u_map = posterior.unit_draws(x, draws, seed)
    numbers = {"phi_corrected": phi, "emcee": mc.to_dict(),
               "c2st_emcee_vs_phi_npe": c2st_score(u_mc, u_phi, seed),
               "c2st_map_vs_phi_npe": c2st_score(u_map, u_phi, seed)}
    sets = {"emcee (Phi only)": u_mc, "NPE on (Phi, T)": u_phi, "NPE on the map": u_map}
    return numbers, sets


def _summary(results: dict) -> dict:
    done = [r for r in results.values() if "skipped" not in r]
    if not done:
        return {}
    summary = {}
    for key in ("c2st_emcee_vs_phi_npe", "c2st_map_vs_phi_npe"):
        values = np.array([r[key] for r in done])
        summary[key] = {"median": float(np.median(values)), "max": float(values.max())}
    seconds = [r["emcee"]["seconds"] for r in done]
    summary["emcee_seconds"] = {"mean": float(np.mean(seconds)), "max": float(max(seconds))}
    summary["rhat_max"] = float(max(max(r["emcee"]["rhat"]) for r in done))
    summary["ess_bulk_min"] = float(min(min(r["emcee"]["ess_bulk"]) for r in done))
    return summary


def crosscheck_to_files(
    model_dir: str | os.PathLike, maps: str | os.PathLike, out: str | os.PathLike, *,
    bank: str | os.PathLike | None = None, phi_npe: str | os.PathLike | None = None,
    scans: int | None = None, draws: int = 2000, cache: str | os.PathLike | None = None,
    seed: int = 0, overwrite: bool = False, log: Callable[[str], None] = print,
) -> dict:
    """``gbsbi crosscheck``: per scan (or the first ``scans``), emcee on p(u | Phi_corr, T)
    through the model's surrogate against the Phi-only NPE (trained on ``bank``, or reused
    from ``phi_npe``) and the map's posterior; writes ``out/crosscheck.json``, the figures and
    (when trained here) the Phi-only NPE; returns the JSON's content."""
    from gbsbi.inference.data import scan_inputs
    from gbsbi.inference.device import configure
    from gbsbi.inference.model import load_model
    from gbsbi.inference.npe.phi_only import phi_inputs, phi_npe_for
    from gbsbi.inference.npe.predict import GbPosterior, scans_outside_prior
    from gbsbi.inference.surrogate import numpy_forward
    from gbsbi.io.atomic import atomic_folder, check_new_folder
    from gbsbi.io.posteriors import unique_names
    from gbsbi.plots.crosscheck import c2st_plot, overlay_plot
    from gbsbi.plots.posterior import safe_name

    check_new_folder(out, overwrite)
    if draws < 100:
        raise GbsbiError(f"--draws must be at least 100, got {draws}")
    configure("cpu")
    model = load_model(model_dir)
    found = scan_inputs(maps, model.spec.experiment, model.spec.inputs)
    for note in found.notes:
        log(note)
    count = len(found.x) if scans is None else min(scans, len(found.x))
    names = unique_names(found.maps.names())[:count]
    estimator = phi_npe_for(model, bank, phi_npe, cache, log)
    posterior, forward = GbPosterior(model), numpy_forward(model.surrogate)
    pairs, defined = phi_inputs(found.x, model.spec.inputs.bins)
    low, high = model.spec.prior.scale_bounds()
    config, rng = EmceeConfig(), np.random.default_rng(seed)
    results, figures = {}, {}
    outside = scans_outside_prior(model, found.x[:count])
    for k, name in enumerate(map(str, names)):
        if not defined[k]:
            results[name] = {"skipped": "Phi_corr is undefined (a map of nothing but noise): "
                                        "no Phi likelihood"}
            continue
        if outside[k]:
            results[name] = {"skipped": "the map's posterior lies outside the prior (far "
                                        "outside the model): no draws to compare"}
            log(f"{name}: skipped, its posterior lies outside the prior")
            continue
        numbers, sets = scan_crosscheck(forward, estimator, posterior, pairs[k], found.x[k],
                                        draws, config, rng, seed + k)
        results[name] = {**numbers, "temperature": float(found.maps.temperature[k])}
        figures[name] = {label: low + u * (high - low) for label, u in sets.items()}
        mc = numbers["emcee"]
        log(f"{name}: Phi_corr {numbers['phi_corrected']:.3f}, emcee {mc['steps']} steps (tau "
            f"max {max(mc['tau']):.0f}, R-hat max {max(mc['rhat']):.4f}, ESS min "
            f"{min(mc['ess_bulk']):.0f}, {mc['seconds']:.1f} s); C2ST emcee vs Phi-NPE "
            f"{numbers['c2st_emcee_vs_phi_npe']:.3f}, map vs Phi-NPE "
            f"{numbers['c2st_map_vs_phi_npe']:.3f}")
    output = {"scans": results, "summary": _summary(results), "emcee": config.to_dict(),
              "phi_npe": {k: v for k, v in estimator.meta.items() if k != "history"},
              "model": str(model_dir), "model_hash": model.hash, "maps": str(maps),
              "maps_hash": found.content_hash, "seed": seed}
    with atomic_folder(out, overwrite) as folder:
        (folder / "crosscheck.json").write_text(json.dumps(output, indent=1))
        for name, sets in figures.items():
            r = results[name]
            title = (f"{name}: Phi_corr = {r['phi_corrected']:.3f}, T = {r['temperature']:.0f}"
                     f" K; C2ST emcee vs Phi-NPE {r['c2st_emcee_vs_phi_npe']:.2f}, map vs "
                     f"Phi-NPE {r['c2st_map_vs_phi_npe']:.2f}")
            overlay_plot(sets, title, folder / f"overlay_{safe_name(name)}.png")
        if figures:
            done = list(figures)
            c2st_plot(done, [results[n]["c2st_emcee_vs_phi_npe"] for n in done],
                      [results[n]["c2st_map_vs_phi_npe"] for n in done],
                      folder / "crosscheck.png")
        if estimator.new:
            estimator.save(folder / "phi_npe")
    log(f"wrote {out}")
    return output
