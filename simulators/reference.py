"""A straightforward reference implementation of the GB model, for cross-checks and benchmarks.

Explicit Euler-Maruyama in real space: the pinned boundary on N_x interior grid points,
dh = M sigma (second difference / dx^2) h dt + M sqrt(2 k_B T / (M W dx)) dW, with a time step
well inside the explicit stability limit dt < dx^2 / (2 M sigma); the GB scattering by a phase
average for each pair of frames separately, one map at a time. Slow by design: it is what the
exact per-mode simulator (:mod:`simulators.gb`) is measured against.
"""

from __future__ import annotations

import numpy as np

from simulators.config import K_B, ExperimentConfig

#: Fraction of the explicit stability limit used as the time step.
STABILITY_FRACTION = 0.2


def reference_map(
    theta: np.ndarray,
    temperature: float,
    config: ExperimentConfig,
    rng: np.random.Generator,
    step_fraction: float = STABILITY_FRACTION,
) -> np.ndarray:
    """One two-time map C(t1, t2) by Euler-Maruyama and per-pair phase averages.

    Args:
        theta: parameters (D [nm^2/s], sigma [J/m^2], c [1]), shape (3,).
        temperature: temperature T in K.
        config: the experiment configuration.
        rng: the source of randomness.
        step_fraction: time step as a fraction of the stability limit dx^2 / (2 M sigma).
            Euler-Maruyama inflates the stationary variance of a mode with rate lambda by
            1 / (1 - lambda dt / 2): up to 25% for the fastest grid mode at the default 0.2.

    Returns:
        C, shape (T, T), float64.
    """
    D, sigma, c = (float(v) for v in theta)
    n_x = config.n_x
    dx = config.L / (n_x + 1)
    x = dx * np.arange(1, n_x + 1)
    mobility = config.M * 1e36  # nm^4/(J s)
    m_sigma = mobility * sigma * 1e-18  # nm^2/s
    # Noise <eta eta'> = 2 k_B T / (M W) delta(x - x') delta(t - t'): on a grid of spacing dx
    # each point gets M * sqrt(2 k_B T / (M W dx)) dW = sqrt(2 M k_B T / (W dx)) dW.
    noise_amp = np.sqrt(2 * mobility * K_B * temperature / (config.W * dx))
    h = config.h0 * np.sin(np.pi * x / config.L)
    step_limit = step_fraction * dx**2 / (2 * m_sigma)
    heights = [h.copy()]
    for t0, t1 in zip(config.t[:-1], config.t[1:], strict=True):
        n_steps = max(1, int(np.ceil((t1 - t0) / step_limit)))
        dt = (t1 - t0) / n_steps
        for _ in range(n_steps):
            lap = np.empty_like(h)
            lap[1:-1] = h[2:] - 2 * h[1:-1] + h[:-2]
            lap[0] = h[1] - 2 * h[0]
            lap[-1] = h[-2] - 2 * h[-1]
            h = h + m_sigma * lap / dx**2 * dt + noise_amp * np.sqrt(dt) * rng.standard_normal(n_x)
        heights.append(h.copy())
    heights = np.array(heights)
    T = config.n_frames
    f_gb = np.ones((T, T), dtype=complex)
    for i in range(T):
        for j in range(i + 1, T):
            f_gb[i, j] = np.mean(np.exp(1j * config.q * (heights[i] - heights[j])))
            f_gb[j, i] = np.conj(f_gb[i, j])
    tau = np.abs(config.t[:, None] - config.t[None, :])
    F = (1 - c) * np.exp(-D * config.q**2 * tau) + c * f_gb
    return 1 + config.beta * np.abs(F) ** 2
