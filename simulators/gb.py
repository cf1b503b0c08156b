r"""Exact simulator of the grain-boundary continuum model (docs/model.md#exact-solution,
the source paper's Eqs. 4-9).

A boundary of length L, pinned at both ends, has height h(x, t) obeying the Edwards-Wilkinson
equation dh/dt = M [sigma h'' + eta]. In the sine basis h = sum_n a_n(t) sin(k_n x),
k_n = n pi / L, each mode is an independent Ornstein-Uhlenbeck process,

.. math::

    \lambda_n = M \sigma k_n^2, \qquad v_n = \frac{2 k_B T}{\sigma W L k_n^2},\qquad
    a_n(t + dt) = a_n(t) e^{-\lambda_n dt} + \sqrt{v_n (1 - e^{-2 \lambda_n dt})}\, \xi,

exact for any frame spacing dt. The initial shape is h(x, 0) = h0 sin(pi x / L). With
u(t, x) = exp(i q h(x, t)) on N_x grid points, F_GB = u u^H / N_x, and the map is

.. math::

    F = (1 - c) e^{-D q^2 |t_2 - t_1|} + c F_{GB}, \qquad C = 1 + \beta |F|^2.

Every function is batched over n parameter sets and draws its randomness only from the
:class:`numpy.random.Generator` it is given.
"""

from __future__ import annotations

import numpy as np

from simulators.config import K_B, ExperimentConfig

#: J/m^2 -> J/nm^2.
_PER_M2_TO_PER_NM2 = 1e-18
#: m^4/(J s) -> nm^4/(J s).
_M4_TO_NM4 = 1e36
#: Maps per product in :func:`_weighted_gb_correlation`.
_WEIGHTED_CHUNK = 16


def _wavenumbers(config: ExperimentConfig, lengths: np.ndarray | None) -> np.ndarray:
    """k_n = n pi / L in 1/nm, shape (n_modes,), or (n, n_modes) for boundaries of lengths
    ``lengths`` L / config.L, shape (n,)."""
    if lengths is None:
        return np.arange(1, config.n_modes + 1) * np.pi / config.L
    L = config.L * np.asarray(lengths, dtype=np.float64)[:, None]
    return np.arange(1, config.n_modes + 1) * np.pi / L


def mode_rates(sigma: np.ndarray, config: ExperimentConfig,
               lengths: np.ndarray | None = None) -> np.ndarray:
    """Relaxation rates lambda_n = M sigma k_n^2 in 1/s.

    Args:
        sigma: GB stiffness in J/m^2, shape (n,).
        config: the experiment configuration.
        lengths: each boundary's length relative to config.L, shape (n,), or None for L.

    Returns:
        Rates, shape (n, n_modes), float64.
    """
    k = _wavenumbers(config, lengths)
    mobility = config.M * _M4_TO_NM4
    return mobility * (np.asarray(sigma, float)[:, None] * _PER_M2_TO_PER_NM2) * k**2


def mode_variances(
    sigma: np.ndarray, temperature: np.ndarray, config: ExperimentConfig,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """Stationary variances v_n = 2 k_B T / (sigma W L k_n^2) in nm^2.

    Args:
        sigma: GB stiffness in J/m^2, shape (n,).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration.
        lengths: each boundary's length relative to config.L, shape (n,), or None for L.

    Returns:
        Variances, shape (n, n_modes), float64.
    """
    k = _wavenumbers(config, lengths)
    sigma = np.asarray(sigma, float)[:, None] * _PER_M2_TO_PER_NM2
    kT = K_B * np.asarray(temperature, float)[:, None]
    L = config.L if lengths is None else config.L * np.asarray(lengths, float)[:, None]
    return 2 * kT / (sigma * config.W * L * k**2)


def mode_amplitudes(
    sigma: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    rng: np.random.Generator,
    lengths: np.ndarray | None = None,
    age: np.ndarray | None = None,
) -> np.ndarray:
    """Sample the mode amplitudes a_n(t_k) at the frame times with the exact OU update.

    Args:
        sigma: GB stiffness in J/m^2, shape (n,).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration.
        rng: the source of randomness.
        lengths: each boundary's length relative to config.L, shape (n,), or None for L
            (the initial shape h0 sin(pi x / L_k) has the same amplitude for every length).
        age: the age t_w of each window in s, shape (n,), or None for 0: the window's first
            frame is at t_w after the initial shape, the modes propagated there with the exact
            update (docs/model.md#age). It uses the normal draws the equilibrium start would, so
            age 0 gives the same bytes.

    Returns:
        Amplitudes a_n(t_k) in nm, shape (n, T, n_modes), float64.
    """
    rates = mode_rates(sigma, config, lengths)
    var = mode_variances(sigma, temperature, config, lengths)
    n, K = rates.shape
    dt = np.diff(config.t)
    a = np.zeros((n, K))
    a[:, 0] = config.h0
    noise = rng.standard_normal((n, config.n_frames, K))
    if config.equilibrium_start:  # the shape relaxes with age, the fluctuations stay stationary
        if age is not None:
            a *= np.exp(-rates * np.asarray(age, dtype=np.float64)[:, None])
        a += np.sqrt(var) * noise[:, 0]
    elif age is not None:
        since = np.asarray(age, dtype=np.float64)[:, None]
        a = a * np.exp(-rates * since) + np.sqrt(var * -np.expm1(-2 * rates * since)) * noise[:, 0]
    out = np.empty((n, config.n_frames, K))
    out[:, 0] = a
    factors = {}  # the update's factors per frame spacing (one on a uniform grid)
    for k, step in enumerate(dt, start=1):
        if step not in factors:
            factors[step] = (np.exp(-rates * step), np.sqrt(var * -np.expm1(-2 * rates * step)))
        decay, scale = factors[step]
        a = a * decay + scale * noise[:, k]
        out[:, k] = a
    return out


def boundary_heights(
    sigma: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    rng: np.random.Generator,
    lengths: np.ndarray | None = None,
    age: np.ndarray | None = None,
) -> np.ndarray:
    """The boundary height h(x, t) on the grid x_j = (j + 1/2) L / N_x at the frame times
    (for a boundary of length L_k, x_j = (j + 1/2) L_k / N_x: sin(k_n x_j) is the same).

    Args:
        sigma: GB stiffness in J/m^2, shape (n,).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration.
        rng: the source of randomness.
        lengths: each boundary's length relative to config.L, shape (n,), or None for L.
        age: each window's age in s, shape (n,), or None for 0 (:func:`mode_amplitudes`).

    Returns:
        h in nm, shape (n, T, N_x), float64.
    """
    a = mode_amplitudes(sigma, temperature, config, rng, lengths, age)
    x = (np.arange(config.n_x) + 0.5) * config.L / config.n_x
    basis = np.sin(np.outer(np.arange(1, config.n_modes + 1) * np.pi / config.L, x))
    if lengths is None:
        return a @ basis
    # many boundaries: float32 (the phases are float32 anyway)
    return a.astype(np.float32) @ basis.astype(np.float32)


def boundary_phase(
    sigma: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    rng: np.random.Generator,
    age: np.ndarray | None = None,
) -> np.ndarray:
    """The GB phase q h(x, t) in rad.

    Args:
        sigma: GB stiffness in J/m^2, shape (n,).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration.
        rng: the source of randomness.
        age: each window's age in s, shape (n,), or None for 0 (:func:`mode_amplitudes`).

    Returns:
        q h, shape (n, T, N_x), float32.
    """
    return (config.q * boundary_heights(sigma, temperature, config, rng, age=age)
            ).astype(np.float32)


def boundary_phases(
    sigma: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """The GB phase field u(t, x) = exp(i q h(x, t)), shape (n, T, N_x), complex64."""
    return phase_field(boundary_phase(sigma, temperature, config, rng))


def phase_field(phase: np.ndarray) -> np.ndarray:
    """u = exp(i phase) as complex64, same shape as ``phase``."""
    return (np.cos(phase) + 1j * np.sin(phase)).astype(np.complex64)


def _gb_correlation(phase: np.ndarray, weights: np.ndarray | None = None,
                    block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of F_GB = u u^H / N_x from the phases q h, shape (n, T, N_x).

    With u = cos + i sin, Re F_GB = (cos cos^T + sin sin^T) / N_x and
    Im F_GB = (sin cos^T - cos sin^T) / N_x: one real matrix product of the stacked
    [[cos, sin], [sin, -cos]] with [cos, sin]^T, about twice as fast as a complex product.
    With ``weights`` w_j (shape (n, N_x), summing to 1 per map), F_GB = sum_j w_j u_j u_j^*
    (several boundaries side by side, :mod:`simulators.polycrystal`); columns come in
    ``block``s of one boundary each, and a block of zero weight is left out.
    """
    if weights is not None:
        return _weighted_gb_correlation(phase, weights, block or phase.shape[-1])
    n, T, n_x = phase.shape
    cos, sin = np.cos(phase), np.sin(phase)
    left = np.empty((n, 2 * T, 2 * n_x), dtype=np.float32)
    left[:, :T, :n_x], left[:, :T, n_x:] = cos, sin
    left[:, T:, :n_x], left[:, T:, n_x:] = sin, -cos
    product = np.matmul(left, np.swapaxes(left[:, :T], 1, 2))
    product *= np.float32(1.0 / n_x)
    return product[:, :T], product[:, T:]


def _weighted_gb_correlation(phase: np.ndarray, weights: np.ndarray,
                             block: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_gb_correlation` with column weights: maps grouped by how many boundary blocks
    they use (absent boundaries cost nothing), a few maps at a time."""
    n, T, _ = phase.shape
    real = np.empty((n, T, T), dtype=np.float32)
    imag = np.empty((n, T, T), dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    used = (weights.reshape(n, -1, block) > 0).any(axis=2).sum(axis=1)
    for count in np.unique(used):
        maps = np.flatnonzero(used == count)
        columns = int(count) * block
        for s in range(0, len(maps), _WEIGHTED_CHUNK):
            part = maps[s:s + _WEIGHTED_CHUNK]
            root = np.sqrt(weights[part, None, :columns])
            angle = phase[part, :, :columns]
            cos, sin = np.cos(angle), np.sin(angle)
            cos *= root
            sin *= root
            left = np.empty((len(part), 2 * T, 2 * columns), dtype=np.float32)
            left[:, :T, :columns], left[:, :T, columns:] = cos, sin
            left[:, T:, :columns], left[:, T:, columns:] = sin, -cos
            product = np.matmul(left, np.swapaxes(left[:, :T], 1, 2))
            real[part], imag[part] = product[:, :T], product[:, T:]
    return real, imag


def bulk_correlation(D: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """The equilibrium bulk term F_eq(tau) = exp(-D q^2 |t2 - t1|).

    Args:
        D: bulk diffusivity in nm^2/s, shape (n,).
        config: the experiment configuration.

    Returns:
        F_eq, shape (n, T, T), float32.
    """
    t = config.t
    tau = np.abs(t[:, None] - t[None, :]).astype(np.float32)
    rate = (np.asarray(D, np.float32) * np.float32(config.q**2))[:, None, None]
    return np.exp(-rate * tau)


def scattering_parts(
    theta: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of F, each shape (n, T, T), float32."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    temperature = np.broadcast_to(np.asarray(temperature, dtype=np.float64), theta.shape[:1])
    return parts_from_phase(theta, boundary_phase(theta[:, 1], temperature, config, rng), config)


def parts_from_phase(
    theta: np.ndarray, phase: np.ndarray, config: ExperimentConfig,
    weights: np.ndarray | None = None, block: int | None = None,
    bulk: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of F = (1 - c) F_eq + c F_GB given the GB phase q h.

    Args:
        theta: parameters (D [nm^2/s], sigma [J/m^2], c [1]), shape (n, 3).
        phase: the GB phase q h from :func:`boundary_phase`, shape (n, T, N_x), float32, or
            several boundaries' side by side (:func:`simulators.polycrystal.sample_phase`).
        config: the experiment configuration.
        weights: each grid point's weight in F_GB, shape (n, N_x), summing to 1 per map, or
            None for the plain phase average.
        block: columns per boundary where ``weights`` are given (the grid's N_x).
        bulk: F_eq, shape (n, T, T), or None for :func:`bulk_correlation`.

    Returns:
        Re F and Im F, each shape (n, T, T), float32.
    """
    real, imag = _gb_correlation(phase, weights, block or config.n_x)
    c32 = theta[:, 2].astype(np.float32)[:, None, None]
    real *= c32
    imag *= c32
    real += (1 - c32) * (bulk_correlation(theta[:, 0], config) if bulk is None else bulk)
    return real, imag


def scattering_function(
    theta: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """The normalised intermediate scattering function F(t1, t2) = (1-c) F_eq + c F_GB.

    Args:
        theta: parameters (D [nm^2/s], sigma [J/m^2], c [1]), shape (n, 3).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration.
        rng: the source of randomness.

    Returns:
        F, shape (n, T, T), complex64, Hermitian with unit diagonal.
    """
    real, imag = scattering_parts(theta, temperature, config, rng)
    return real + np.complex64(1j) * imag


def two_time_maps(
    theta: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noiseless two-time maps C(t1, t2) = 1 + beta |F(t1, t2)|^2 (Siegert relation).

    Args:
        theta: parameters (D [nm^2/s], sigma [J/m^2], c [1]), shape (n, 3).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration.
        rng: the source of randomness.

    Returns:
        C, shape (n, T, T), float32. The same rng state gives the same bytes.
    """
    return siegert(*scattering_parts(theta, temperature, config, rng), config.beta)


def siegert(real: np.ndarray, imag: np.ndarray, beta: float) -> np.ndarray:
    """C = 1 + beta |F|^2 from Re F and Im F (float32, in place of ``real``)."""
    real *= real
    imag *= imag
    real += imag
    real *= np.float32(beta)
    real += np.float32(1.0)
    return real
