r"""Posterior predictive checks (docs/validation.md#posterior-predictive-checks): maps
simulated from a scan's posterior draws with the measurement model at the scan's noise level,
against the observed map.

For each draw theta_d the GB model gives the noiseless |F|^2 = G_d, and the fast noise model
(:mod:`simulators.noise`) measures it. The noise nuisances are not in the posterior, so they
are fitted to the scan, per draw:

* contrast: beta_d = <(C_obs - 1) G_d> / <G_d^2> over the valid off-diagonal pairs (least
  squares of the observed map against the draw's shape), clipped to the configuration's range;
* counts: the scan's noise variance s2 (:func:`gbsbi.summaries.phi_noise.noise_summary`, the
  drift's power outside smooth patterns) must equal the delta-method variance of the
  estimator (:func:`simulators.noise.estimator_variance`) averaged over the pairs. With one
  mean count nbar per frame (a = 1 / nbar) that average is A a^2 + B a + K over N_pix, so with
  N_pix at the geometric centre of its range a is the positive root of a quadratic. Where nbar
  would leave its range it is clipped and N_pix solved instead (and clipped). One number, s2,
  cannot tell counts from pixels apart: this choice fixes the noise level, not its split into
  shot and speckle noise.

Frames missing in the observed map are missing in the replicates too. Per scan: the observed
plain and corrected Phi against their predictive distributions (tail probability
p = 2 min(P(rep >= obs), P(rep <= obs))), cuts C(t1, t1 + tau) with 5-95 % predictive bands and
the fraction of observed points inside, and the residual map (observed - predictive mean) in
units of the predictive sd.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from gbsbi.summaries.phi import phi
from gbsbi.summaries.phi_noise import noise_summary
from simulators.config import ExperimentConfig, MeasurementPrior, SamplePrior
from simulators.noise import noisy_maps
from simulators.polycrystal import sample_parts

#: Fraction of the map's side at which the cuts start: t1 = 0, T / 8, T / 4, T / 2.
CUT_STARTS = (0.0, 0.125, 0.25, 0.5)


def _off(T: int) -> np.ndarray:
    return ~np.eye(T, dtype=bool)


def fit_nuisances(
    C_obs: np.ndarray, G: np.ndarray, s2: float, measurement: MeasurementPrior
) -> dict[str, np.ndarray]:
    """Contrast, counts and pixels per draw that reproduce the scan (module docstring).

    Args:
        C_obs: the observed map, shape (T, T), NaN on missing frames.
        G: |F|^2 of each draw's noiseless map, shape (draws, T, T).
        s2: the observed map's noise variance per element.
        measurement: the configuration's nuisance ranges.

    Returns:
        ``beta``, ``counts``, ``n_pix``, each shape (draws,).
    """
    mask = _off(C_obs.shape[-1]) & ~np.isnan(C_obs)
    y = (C_obs - 1)[mask]
    g = G[:, mask].astype(np.float64)
    beta = np.clip((g @ y) / np.maximum((g * g).sum(1), 1e-30), *measurement.beta)
    s = beta[:, None] * g
    A = (1 + s).mean(1)
    B = (2 * (beta[:, None] + 2 * beta[:, None] * s - s**2)).mean(1)
    K = (s**2 * (1 - 4 * beta[:, None] + 2 * s) + beta[:, None] ** 2 * (1 + 4 * s)).mean(1)
    n_pix = np.full(len(G), np.sqrt(np.prod(measurement.n_pix)))
    s2 = max(float(s2), 1e-12) if np.isfinite(s2) else 1e-12
    disc = B**2 - 4 * A * (K - n_pix * s2)
    a = np.where(disc > 0, (-B + np.sqrt(np.maximum(disc, 0))) / (2 * A), 0.0)
    counts = np.clip(1 / np.maximum(a, 1e-12), *measurement.counts)
    a = 1 / counts
    needed = (A * a**2 + B * a + K) / s2
    clipped = (counts <= measurement.counts[0]) | (counts >= measurement.counts[1])
    n_pix = np.where(clipped, np.clip(np.round(needed), *measurement.n_pix), np.round(n_pix))
    return {"beta": beta, "counts": counts, "n_pix": n_pix}


def replicate_maps(
    theta: np.ndarray, temperature: float, C_obs: np.ndarray, config: ExperimentConfig,
    measurement: MeasurementPrior, rng: np.random.Generator,
    sample: SamplePrior | None = None, age: float = 0.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Maps of the posterior predictive, one per draw.

    Args:
        theta: posterior draws (D, sigma, c), shape (draws, 3).
        temperature: the scan's T in K.
        C_obs: the observed map on the model's grid, shape (T, T).
        config: the model's experiment configuration.
        measurement: the model's nuisance ranges.
        rng: the source of randomness.
        sample: the model's sample nuisances (a polycrystal's boundaries), drawn per replicate
            from their prior (they are not inferred); None for one boundary of length L.
        age: the window's age t_w in s (docs/model.md#age): the replicates start there too.

    Returns:
        Replicates, shape (draws, T, T), float32, NaN where the observed map has missing
        frames, and the fitted nuisances.
    """
    temps = np.full(len(theta), float(temperature))
    # as simulators.measured.measured_maps, with the nuisances fitted to each draw's own |F|^2
    drawn = None if sample is None else sample.sample(len(theta), rng)
    if age:
        drawn = {**(drawn or {}), "age": np.full(len(theta), float(age))}
    real, imag = sample_parts(theta, temps, config, drawn, rng)
    G = real**2 + imag**2
    _, _, s2 = noise_summary(C_obs)
    nuisance = fit_nuisances(C_obs, G, float(s2), measurement)
    clean = 1 + nuisance["beta"].astype(np.float32)[:, None, None] * G
    reps = noisy_maps(clean, nuisance["counts"][:, None], nuisance["n_pix"], nuisance["beta"],
                      rng, beam_rms=measurement.beam_rms)
    missing = np.isnan(C_obs).all(axis=1)
    reps[:, missing, :] = np.nan
    reps[:, :, missing] = np.nan
    return reps, nuisance


def predictive_statistics(
    theta: np.ndarray, temperature: float, C_obs: np.ndarray, config: ExperimentConfig,
    measurement: MeasurementPrior, sample: SamplePrior | None, bins: int, grading: float,
    rng: np.random.Generator, age: float = 0.0,
) -> tuple[float, float, float]:
    """The raw predictive p-values of one scan for the misspecification test
    (:mod:`gbsbi.validation.statistics`): of its reduced map, of its plain Phi and of its
    trend along the window against replicates at posterior draws ``theta`` (shape
    (draws, 3)) and its noise level.

    Args:
        bins, grading: the model's reduction of maps (:class:`gbsbi.inference.inputs.InputConfig`).
        age: the scan's window age in s.
    """
    from gbsbi.inference.inputs import bin_edges, reduce_map
    from gbsbi.validation.statistics import (
        discrepancy_pvalue,
        predictive_pvalues,
        trend_profile,
    )

    reps, _ = replicate_maps(theta, temperature, C_obs, config, measurement, rng, sample, age)
    both = np.concatenate([C_obs[None].astype(np.float32), reps])
    with warnings.catch_warnings():  # dropped frames: empty bins are NaN-free zeros
        warnings.simplefilter("ignore", RuntimeWarning)
        reduced, _ = reduce_map(both, bin_edges(C_obs.shape[-1], bins, grading))
        phis = phi(both)
    upper = np.triu_indices(bins)
    flat = reduced[:, upper[0], upper[1]].astype(np.float64)
    p_map, p_phi = predictive_pvalues(flat[0], flat[1:], float(phis[0]), phis[1:])
    trends = trend_profile(both)
    return p_map, p_phi, discrepancy_pvalue(trends[0], trends[1:])


def tail_probability(replicates: np.ndarray, observed: float) -> float:
    """Two-sided predictive p-value 2 min(P(rep >= obs), P(rep <= obs)), NaNs left out."""
    reps = replicates[np.isfinite(replicates)]
    if not np.isfinite(observed) or len(reps) == 0:
        return float("nan")
    return float(min(1.0, 2 * min((reps >= observed).mean(), (reps <= observed).mean())))


@dataclass(frozen=True)
class ScanCheck:
    """The predictive check of one scan (see :func:`check_scan`)."""

    observed: np.ndarray
    replicates: np.ndarray
    nuisance: dict
    phi_obs: tuple[float, float]
    phi_rep: np.ndarray
    starts: np.ndarray
    numbers: dict


def check_scan(
    theta: np.ndarray, temperature: float, C_obs: np.ndarray, config: ExperimentConfig,
    measurement: MeasurementPrior, rng: np.random.Generator,
    sample: SamplePrior | None = None, age: float = 0.0,
) -> ScanCheck:
    """Replicates of one scan and their comparison with it (module docstring).

    Returns:
        The replicates, the observed and predictive (plain, corrected) Phi, the cut starts
        and the numbers: tail probabilities, fraction of cut points in the 90 % band, the mean
        absolute residual z and the nuisances' medians.
    """
    reps, nuisance = replicate_maps(theta, temperature, C_obs, config, measurement, rng, sample,
                                    age)
    _, corrected, _ = noise_summary(reps)
    phi_rep = np.stack([phi(reps), corrected], axis=1)
    _, obs_corr, _ = noise_summary(C_obs)
    phi_obs = (float(phi(C_obs)), float(obs_corr))
    T = C_obs.shape[-1]
    starts = (np.array(CUT_STARTS) * T).astype(int)
    inside = []
    with warnings.catch_warnings():  # dropped frames are all-NaN in every replicate
        warnings.simplefilter("ignore", RuntimeWarning)
        for s in starts:
            lag = np.arange(1, T - s)
            band = np.nanquantile(reps[:, s, s + lag], [0.05, 0.95], axis=0)
            cut = C_obs[s, s + lag]
            ok = np.isfinite(cut) & np.isfinite(band).all(0)
            inside.append(((cut >= band[0]) & (cut <= band[1]))[ok])
        z = (C_obs - np.nanmean(reps, 0)) / np.nanstd(reps, 0)
    mask = _off(T) & ~np.isnan(C_obs)
    numbers = {
        "phi_observed": phi_obs[0], "phi_corrected_observed": phi_obs[1],
        "phi_predictive_q05_q50_q95": np.nanquantile(phi_rep[:, 0], [0.05, 0.5, 0.95]).tolist(),
        "phi_corrected_predictive_q05_q50_q95":
            np.nanquantile(phi_rep[:, 1], [0.05, 0.5, 0.95]).tolist()
            if np.isfinite(phi_rep[:, 1]).any() else [float("nan")] * 3,
        "p_phi": tail_probability(phi_rep[:, 0], phi_obs[0]),
        "p_phi_corrected": tail_probability(phi_rep[:, 1], phi_obs[1]),
        "cuts_inside_90": float(np.concatenate(inside).mean()),
        "mean_abs_residual_z": float(np.nanmean(np.abs(z[mask]))),
        "nuisance_median": {k: float(np.median(v)) for k, v in nuisance.items()},
        "draws": len(theta),
    }
    return ScanCheck(C_obs, reps, nuisance, phi_obs, phi_rep, starts, numbers)
