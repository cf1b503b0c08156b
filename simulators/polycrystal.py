r"""Several boundaries in the scattering volume (docs/model.md#polycrystal).

A beam lights K boundaries of lengths L_k = L l_k (l_k from
:meth:`simulators.config.SamplePrior.sample`), each its own realisation of the pinned,
relaxing boundary of :mod:`simulators.gb` with the rates M sigma (n pi / L_k)^2 and the
roughness 2 k_B T / (sigma W L_k k_n^2) of its own length. The scatterers on boundaries are
spread over them in proportion to their lengths, so

.. math::

    F_{GB}(t_1, t_2) = \sum_k w_k \langle e^{i q [h_k(x, t_1) - h_k(x, t_2)]} \rangle_x,
    \qquad w_k = L_k / \sum_j L_j .

Boundary k's normal makes an angle phi_k with the momentum transfer, so its phase is
q cos(phi_k) h_k. A fraction f of the scatterers does not move at all (substrate, oxide, frozen
grains): F -> f + (1 - f) F.

The boundaries' phases sit side by side, K_max N_x columns per map (absent boundaries with
weight 0), so one weighted product gives F_GB. One boundary of length L along q without static
scatterers takes the path of :func:`simulators.gb.boundary_phase` itself: the same random
numbers, the same bytes.
"""

from __future__ import annotations

import numpy as np

from simulators.config import ExperimentConfig
from simulators.dynamics import bulk_term, decorrelation
from simulators.gb import boundary_heights, boundary_phase, parts_from_phase, siegert


def sample_phase(
    theta: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    sample: dict[str, np.ndarray] | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The GB phases q h of every boundary of each map, and their weights.

    Args:
        theta: parameters (D [nm^2/s], sigma [J/m^2], c [1]), shape (n, 3).
        temperature: temperature T in K, shape (n,).
        config: the experiment configuration.
        sample: ``lengths`` (relative, shape (n, K_max), 0 for an absent boundary) and
            optionally ``tilt`` (cos phi_k, shape (n, K_max)) from
            :meth:`~simulators.config.SamplePrior.sample`; None (or no ``lengths``) for one
            boundary of length L along q. An ``age`` (n,) in s starts each window that long
            after the boundaries' initial shape (:func:`simulators.gb.mode_amplitudes`).
        rng: the source of randomness.

    Returns:
        The phases, shape (n, T, K_max N_x), float32, boundary k of a map in columns
        k N_x ... (k + 1) N_x - 1; and the weight of each column, shape (n, K_max N_x),
        float32, summing to 1 per map (0 for absent boundaries), or None where every map has
        the single boundary of length L (then the phases are
        :func:`~simulators.gb.boundary_phase`'s).
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    temperature = np.broadcast_to(np.asarray(temperature, dtype=np.float64), theta.shape[:1])
    lengths = None if sample is None or "lengths" not in sample else \
        np.asarray(sample["lengths"], dtype=np.float64)
    tilt = None if sample is None or "tilt" not in sample else \
        np.asarray(sample["tilt"], dtype=np.float32)
    age = None if sample is None or "age" not in sample else \
        np.broadcast_to(np.asarray(sample["age"], dtype=np.float64), theta.shape[:1])
    if lengths is None or (lengths.shape[1] == 1 and np.all(lengths == 1.0)):
        phase = boundary_phase(theta[:, 1], temperature, config, rng, age)
        if tilt is not None:
            phase *= tilt[:, :1, None]
        return phase, None
    n, k_max = lengths.shape
    present = lengths > 0
    owner, slot = np.nonzero(present)  # map and place of each boundary, map-major
    heights = boundary_heights(theta[owner, 1], temperature[owner], config, rng,
                               lengths[present], None if age is None else age[owner])
    T, n_x = config.n_frames, config.n_x
    phase = np.zeros((n, T, k_max, n_x), dtype=np.float32)
    phase[owner, :, slot, :] = (config.q * heights).astype(np.float32)
    if tilt is not None:
        phase *= tilt[:, None, :, None]
    share = lengths / lengths.sum(axis=1, keepdims=True)
    weights = np.repeat(share / n_x, n_x, axis=1).astype(np.float32)
    return phase.reshape(n, T, k_max * n_x), weights


def trimmed(phase: np.ndarray, weights: np.ndarray | None,
            columns: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``columns`` columns of phases and weights (a group of maps whose later
    boundaries are all absent)."""
    if weights is None:
        return phase, None
    return phase[..., :columns], weights[:, :columns]


def static_fraction(sample: dict[str, np.ndarray] | None, n: int) -> np.ndarray | None:
    """The static fraction f of each map, shape (n,), or None where no map has any."""
    if sample is None or "static" not in sample:
        return None
    f = np.broadcast_to(np.asarray(sample["static"], dtype=np.float64), (n,))
    return f if np.any(f > 0) else None


def sample_parts(
    theta: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    sample: dict[str, np.ndarray] | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Re F and Im F of polycrystals with static scatterers, each shape (n, T, T), float32:
    F = f + (1 - f) [(1 - c) F_eq + c F_GB] (module docstring), with the departures of the
    dynamics of :mod:`simulators.dynamics` where ``sample`` has them."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    phase, weights = sample_phase(theta, temperature, config, sample, rng)
    real, imag = parts_from_phase(theta, phase, config, weights, config.n_x,
                                  bulk_term(theta[:, 0], config, sample))
    f = static_fraction(sample, len(theta))
    if f is not None:
        moving = (1 - f).astype(np.float32)[:, None, None]
        real *= moving
        real += f.astype(np.float32)[:, None, None]
        imag *= moving
    factor = decorrelation(config, sample)
    if factor is not None:
        real *= factor
        imag *= factor
    return real, imag


def with_static(u: np.ndarray, weights: np.ndarray | None, c: np.ndarray,
                f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The GB factors and fractions that carry static scatterers, for the exact measurement.

    F = f + (1 - f) [(1 - c) F_eq + c sum_j w_j u_j u_j^H] is
    (1 - c') F_eq + c' u' u'^H / (N + 1) with c' = 1 - (1 - f)(1 - c) and u' the columns u_j
    weighted by w_j (1 - f) c / c', beside one constant column weighted by f / c'.

    Args:
        u: GB phase factors exp(i q h), shape (n, T, N), complex64.
        weights: each column's weight in F_GB, shape (n, N), or None for equal weights.
        c: GB fractions, shape (n,).
        f: static fractions, shape (n,).

    Returns:
        u', shape (n, T, N + 1), and c', shape (n,).
    """
    n, T, N = u.shape
    w = np.full((n, N), 1.0 / N) if weights is None else np.asarray(weights, np.float64)
    c_new = 1 - (1 - f) * (1 - c)
    safe = np.where(c_new > 0, c_new, 1.0)
    share = np.concatenate([w * ((1 - f) * c / safe)[:, None], (f / safe)[:, None]], axis=1)
    ones = np.ones((n, T, 1), dtype=u.dtype)
    factors = np.concatenate([u, ones], axis=2)
    factors *= np.sqrt(share * (N + 1)).astype(np.float32)[:, None, :]
    return factors, c_new


def noiseless_maps(
    theta: np.ndarray,
    temperature: np.ndarray,
    config: ExperimentConfig,
    sample: dict[str, np.ndarray] | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noiseless maps C = 1 + beta |F|^2 of polycrystals (:func:`sample_phase`), shape
    (n, T, T), float32; with ``sample`` None or a single boundary of length L, the bytes of
    :func:`simulators.gb.two_time_maps`."""
    return siegert(*sample_parts(theta, temperature, config, sample, rng), config.beta)
