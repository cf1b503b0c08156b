"""Maps as measured: the GB model followed by a measurement model, for banks and
pseudo-experiments.

``mode`` selects the measurement: ``none`` (the noiseless Siegert map), ``fast`` (the fast noise
model of :mod:`simulators.noise`, near the cost of a noiseless map) or ``exact`` (photon-counting
speckle pixels of :mod:`simulators.measurement`, hundreds of ms per map). Each map has its own
nuisance values: mean counts per pixel per frame, pixels N_pix and contrast beta.
"""

from __future__ import annotations

import numpy as np

from simulators.config import ExperimentConfig, MeasurementPrior
from simulators.gb import boundary_phase, parts_from_phase, phase_field
from simulators.measurement import measure_factors
from simulators.noise import noisy_maps

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
            :meth:`MeasurementPrior.sample`.
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
    beta = np.asarray(nuisance["beta"], dtype=np.float64)
    phase = boundary_phase(theta[:, 1], temperature, config, rng)
    real, imag = parts_from_phase(theta, phase, config)
    clean = 1 + beta.astype(np.float32)[:, None, None] * (real**2 + imag**2)
    if mode == "fast":
        counts = np.asarray(nuisance["counts"], dtype=np.float64)[:, None]
        noisy = noisy_maps(clean, counts, nuisance["n_pix"], beta, rng,
                           beam_rms=measurement.beam_rms, halves=halves)
        if not halves:
            return {"C": noisy, "C_noiseless": clean}
        return {"C": noisy[0], "C_a": noisy[1], "C_b": noisy[2], "C_noiseless": clean}
    u = phase_field(phase)
    results = []
    for k in range(len(theta)):
        setting = measurement.setting(nuisance["counts"][k], nuisance["n_pix"][k], beta[k])
        gamma = theta[k, 0] * config.q**2
        results.append(measure_factors(config.t, gamma, theta[k, 2], u[k], setting, rng))
    C, C_a, C_b = (np.stack([getattr(r, name) for r in results]).astype(np.float32)
                   for name in ("C", "C_a", "C_b"))
    return {"C": C, "C_a": C_a, "C_b": C_b, "C_noiseless": clean}
