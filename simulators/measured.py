"""Maps as measured: the GB model followed by a measurement model, for banks and
pseudo-experiments.

``mode`` selects the measurement: ``none`` (the noiseless Siegert map), ``fast`` (the fast noise
model of :mod:`simulators.noise`, near the cost of a noiseless map) or ``exact`` (photon-counting
speckle pixels of :mod:`simulators.measurement`, hundreds of ms per map). Each map has its own
nuisance values: mean counts per pixel per frame, pixels N_pix, contrast beta, the slope of a
beam-intensity drift, the fraction of dropped frames and, for a polycrystal, the relative
lengths and tilts of its boundaries and its static fraction (:mod:`simulators.polycrystal`).
"""

from __future__ import annotations

import numpy as np

from simulators.config import ExperimentConfig, MeasurementPrior
from simulators.dynamics import has_dynamics
from simulators.gb import parts_from_phase, phase_field
from simulators.measurement import drift_profile, measure, measure_factors
from simulators.noise import noisy_maps
from simulators.polycrystal import sample_parts, sample_phase, static_fraction, with_static

MODES = ("none", "fast", "exact")


def measured_maps(
    theta: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    nuisance: dict[str, np.ndarray],
    mode: str,
    measurement: MeasurementPrior,
    rng: np.random.Generator,
    halves: bool = True,
) -> dict[str, np.ndarray]:
    """Simulate maps and measure them.

    Args:
        theta: parameters (D [nm^2/s], sigma [J/m^2], c [1]), shape (n, 3).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration (its beta is replaced by ``nuisance['beta']``).
        nuisance: ``counts`` (n,), ``n_pix`` (n,) and ``beta`` (n,), e.g. from
            :meth:`MeasurementPrior.sample`; optionally ``drift`` (n,) and ``dropped`` (n,)
            (absent: none) and a polycrystal's ``lengths`` (n, K_max), ``tilt`` (n, K_max) and
            ``static`` (n,) from :meth:`~simulators.config.SamplePrior.sample` (absent: one
            boundary of length L along q, no static scatterers).
        mode: ``fast`` or ``exact``.
        measurement: the fixed measurement constants (beam_rms; dead_fraction and
            drop_fraction for the exact model).
        rng: the source of randomness.
        halves: also return the maps of two disjoint pixel halves (the fast model then costs
            about four times as much; the exact model always has them).

    Returns:
        ``C`` the measured maps, ``C_noiseless`` and, with ``halves``, ``C_a`` and ``C_b`` the
        maps of two disjoint pixel halves; each shape (n, T, T), float32 (NaN rows and columns
        for dropped frames).
    """
    if mode not in ("fast", "exact"):
        raise ValueError(f"measurement mode must be 'fast' or 'exact', got {mode!r}")
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    temperature = np.asarray(temperature, dtype=np.float64)
    n = len(theta)
    beta = np.asarray(nuisance["beta"], dtype=np.float64)
    drift = np.asarray(nuisance.get("drift", np.zeros(n)), dtype=np.float64)
    dropped = np.asarray(nuisance.get("dropped", np.zeros(n)), dtype=np.float64)
    factored = mode == "exact" and not has_dynamics(nuisance)
    if factored:  # the exact route measures the bulk and GB factors, not F
        phase, weights = sample_phase(theta, temperature, config, nuisance, rng)
        real, imag = parts_from_phase(theta, phase, config, weights)
        static = static_fraction(nuisance, n)
        if static is not None:  # F -> f + (1 - f) F, as polycrystal.sample_parts
            moving = (1 - static).astype(np.float32)[:, None, None]
            real = moving * real + static.astype(np.float32)[:, None, None]
            imag = moving * imag
    else:
        real, imag = sample_parts(theta, temperature, config, nuisance, rng)
    clean = 1 + beta.astype(np.float32)[:, None, None] * (real**2 + imag**2)
    if mode == "fast":
        counts = np.asarray(nuisance["counts"], dtype=np.float64)[:, None]
        if np.any(drift != 0):
            counts = counts * drift_profile(drift, config.n_frames)
        noisy = noisy_maps(clean, counts, nuisance["n_pix"], beta, rng,
                           beam_rms=measurement.beam_rms, halves=halves)
        maps = {"C": noisy} if not halves else {"C": noisy[0], "C_a": noisy[1], "C_b": noisy[2]}
        _drop_frames(maps, dropped, rng)
        return {**maps, "C_noiseless": clean}
    settings = [measurement.setting(nuisance["counts"][k], nuisance["n_pix"][k], beta[k],
                                    drift[k], dropped[k]) for k in range(n)]
    if not factored:  # F itself, factored by measure (a non-stationary F has no AR(1) bulk)
        F = real + np.complex64(1j) * imag
        return {**_stacked([measure(F[k], settings[k], rng) for k in range(n)]),
                "C_noiseless": clean}
    u = phase_field(phase)
    fractions = theta[:, 2]
    if static is not None:
        u, fractions = with_static(u, weights, fractions, static)
    elif weights is not None:  # u u^H / N_x is then the weighted average
        u *= np.sqrt(weights * weights.shape[1]).astype(np.float32)[:, None, :]
    gamma = theta[:, 0] * config.q**2
    return {**_stacked([measure_factors(config.t, gamma[k], fractions[k], u[k], settings[k], rng)
                        for k in range(n)]), "C_noiseless": clean}


def _stacked(results: list) -> dict[str, np.ndarray]:
    """The maps ``C``, ``C_a`` and ``C_b`` of per-map measurements, stacked, float32."""
    return {name: np.stack([getattr(r, name) for r in results]).astype(np.float32)
            for name in ("C", "C_a", "C_b")}


def _drop_frames(maps: dict[str, np.ndarray], dropped: np.ndarray,
                 rng: np.random.Generator) -> None:
    """Set round(f T) frames of each map to NaN rows and columns (in every map of ``maps``,
    the same frames), for a fraction f per map; nothing is drawn for a map without any."""
    T = next(iter(maps.values())).shape[-1]
    for k, fraction in enumerate(dropped):
        count = int(round(fraction * T))
        if count == 0:
            continue
        frames = rng.choice(T, count, replace=False)
        for C in maps.values():
            C[k, frames, :] = np.nan
            C[k, :, frames] = np.nan
