r"""Exact measurement model: from F(t1, t2) to photon-count frames and the two-time estimator.

docs/model.md#exact-photon-counting. For each of N_pix pixels of a q-ROI and each of M speckle
modes, the complex field is a circular Gaussian process E_{p,m}(t) ~ CN(0, F); the intensity and the
counts are

.. math::

    I_p(t) = \frac{1}{M_p} \sum_{m < M_p} |E_{p,m}(t)|^2, \qquad
    n_p(t) \sim \operatorname{Poisson}(\bar n\, b(t)\, I_p(t)),

with b(t) an optional lognormal beam-intensity fluctuation (mean 1, relative rms ``beam_rms``,
the same for every pixel). The estimator over the live pixels is

.. math::

    C(t_1, t_2) = \frac{\langle n_p(t_1) n_p(t_2) \rangle_p}
                       {\langle n_p(t_1) \rangle_p \langle n_p(t_2) \rangle_p},

whose mean off the diagonal tends to 1 + beta |F|^2 (b(t) cancels in the ratio); its diagonal
carries the Poisson self-term 1 + beta + 1 / (nbar b(t)).

Contrast. M independent modes give beta = 1 / M. A non-integer 1 / beta is met exactly in the
mean by a mode-number mixture: a fraction w of the pixels has M_hi = M_lo + 1 modes, the rest
M_lo = floor(1 / beta), with (1 - w) / M_lo + w / M_hi = beta, spread evenly over the pixels
(Bresenham) so that each pixel half carries the same mixture. ``beta_eff`` reports the realised
mean of 1 / M_p.

Fields. ``measure`` factors any Hermitian PSD F by ``eigh`` (negative eigenvalues from rounding
are clipped to zero, the role jitter plays for a Cholesky factor, which a rank-deficient GB Gram
would break) and draws E = L z. ``measure_factors`` uses the structure
F = (1 - c) exp(-gamma |t2 - t1|) + c u u^H / N_x: the bulk part is a stationary complex
Ornstein-Uhlenbeck process drawn by its exact AR(1) recursion, the GB part u z_x / sqrt(N_x).
Both are exact in distribution.

Missing data. Dead pixels have zero counts and are excluded from the estimator; dropped frames
have no data and give NaN rows and columns of C. The live pixels are split into two disjoint
halves, whose maps feed the split-half Phi (``gbsbi.summaries.phi.phi(C_a, C_b)``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simulators.config import MeasurementConfig  # defined beside MeasurementPrior

_FIELDS_PER_CHUNK = 1 << 21  # complex samples per chunk of pixels x modes x frames, 16 MiB


class Measurement(NamedTuple):
    """Estimated two-time maps of one or more measurements.

    Attributes:
        C: two-time maps from all live pixels, shape (..., T, T), float64; NaN on dropped frames.
        C_a: the map from the first half of the live pixels, same shape.
        C_b: the map from the second half, same shape.
        beta_eff: the realised contrast, the mean of 1 / M_p over the live pixels, shape (...).
        n_live: number of live pixels, shape (...).
        valid: True for frames with data, shape (..., T).
    """

    C: np.ndarray
    C_a: np.ndarray
    C_b: np.ndarray
    beta_eff: np.ndarray
    n_live: np.ndarray
    valid: np.ndarray


def exponential_kernel(t: np.ndarray, gamma: float) -> np.ndarray:
    """The bulk kernel exp(-gamma |t2 - t1|), gamma = D q^2 in 1/s; t in s, shape (T,) -> (T, T)."""
    t = np.asarray(t, dtype=np.float64)
    return np.exp(-gamma * np.abs(t[:, None] - t[None, :]))


def compose_f(t: np.ndarray, gamma: float, c: float, u: np.ndarray) -> np.ndarray:
    """F = (1 - c) exp(-gamma |t2 - t1|) + c u u^H / N_x, complex, shape (T, T).

    Args:
        t: frame times in s, shape (T,).
        gamma: bulk rate D q^2 in 1/s.
        c: GB fraction in [0, 1].
        u: GB phase factors exp(i q h(x, t)), shape (T, N_x), complex.
    """
    u = np.asarray(u, dtype=np.complex128)
    return (1.0 - c) * exponential_kernel(t, gamma) + c * (u @ u.conj().T) / u.shape[1]


def psd_factor(F: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """A thin factor L with L L^H = F of a Hermitian PSD matrix, by ``eigh``.

    Args:
        F: Hermitian PSD matrix, shape (T, T).
        rtol: eigenvalues below rtol times the largest are dropped (rounding noise).

    Returns:
        L, shape (T, r), complex128, r the numerical rank.
    """
    w, V = np.linalg.eigh(np.asarray(F, dtype=np.complex128))
    keep = w > rtol * max(w[-1], 0.0)
    return V[:, keep] * np.sqrt(w[keep])


def mode_numbers(beta: float, n: int) -> np.ndarray:
    """Modes M_p of n pixels: M_lo or M_lo + 1, evenly mixed so that mean(1 / M_p) ~ beta.

    Args:
        beta: contrast in (0, 1].
        n: number of pixels.

    Returns:
        M_p, shape (n,), int.
    """
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must lie in (0, 1], got {beta}")
    m_lo = int(np.floor(1.0 / beta + 1e-9))
    w = 0.0 if m_lo * beta >= 1.0 - 1e-9 else (1.0 / m_lo - beta) / (1.0 / m_lo - 1.0 / (m_lo + 1))
    p = np.arange(n + 1)
    hi = np.diff(np.floor(p * w + 0.5))  # Bresenham: fraction w of ones, evenly spread
    return m_lo + hi.astype(np.int64)


def beam_intensity(
    beam_rms: float, shape: int | tuple[int, ...], rng: np.random.Generator
) -> np.ndarray | float:
    """A lognormal beam intensity b(t) with mean 1 and relative rms ``beam_rms``.

    Args:
        beam_rms: relative rms of b; 0 for a steady beam (then nothing is drawn).
        shape: shape of the draw, e.g. (T,) for one map's frames.
        rng: the only source of randomness.

    Returns:
        b, shape ``shape``, float64; the scalar 1.0 for a steady beam.
    """
    if beam_rms <= 0:
        return 1.0
    s2 = np.log1p(beam_rms**2)
    return np.exp(np.sqrt(s2) * rng.standard_normal(shape) - s2 / 2)


def drift_profile(slope: float | np.ndarray, n_frames: int) -> np.ndarray:
    """A linear beam-intensity drift b(t_k) = 1 + a (k / T - 1/2) over the window's frames,
    shape (T,), or (n, T) for slopes a of shape (n,); mean 1 over the frames' start times."""
    k = np.arange(n_frames) / n_frames - 0.5
    return 1 + np.asarray(slope, dtype=np.float64)[..., None] * k


def _complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard circular complex normals CN(0, 1), complex64."""
    z = rng.standard_normal((*shape, 2), dtype=np.float32)
    return (z[..., 0] + 1j * z[..., 1]).astype(np.complex64) * np.float32(np.sqrt(0.5))


def _ou_fields(t: np.ndarray, gamma: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n stationary complex OU paths with covariance exp(-gamma |t2 - t1|), shape (n, T)."""
    z = _complex_normal(rng, (len(t), n))
    rho = np.exp(-gamma * np.diff(t)).astype(np.float32)
    e = np.empty_like(z)
    e[0] = z[0]
    for k in range(1, len(t)):
        e[k] = rho[k - 1] * e[k - 1] + np.sqrt(1 - rho[k - 1] ** 2) * z[k]
    return e.T


class _Sampler(NamedTuple):
    """Draws fields of shape (n, T), complex64, for one map."""

    T: int
    factor: np.ndarray | None  # general route: L, shape (T, r)
    t: np.ndarray | None  # factor route: frame times, bulk rate, GB fraction, GB factor
    gamma: float = 0.0
    c: float = 0.0
    gb: np.ndarray | None = None

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.factor is not None:
            z = _complex_normal(rng, (self.factor.shape[1], n))
            return (self.factor.astype(np.complex64) @ z).T
        e = np.sqrt(np.float32(1 - self.c)) * _ou_fields(self.t, self.gamma, n, rng)
        if self.c > 0:
            z = _complex_normal(rng, (self.gb.shape[1], n))
            e += np.sqrt(np.float32(self.c)) * (self.gb.astype(np.complex64) @ z).T
        return e


def _count_chunks(sampler: _Sampler, config: MeasurementConfig, rng: np.random.Generator):
    """Per map: draw dead pixels, dropped frames and b(t), then yield count chunks.

    Yields, in this order: ``(n_live, valid, dead, modes)`` once, then ``(half, counts)`` with
    half in {0, 1} and counts of shape (P, T), float64, zero on dropped frames.
    """
    T = sampler.T
    n_dead = int(round(config.dead_fraction * config.n_pix))
    n_live = config.n_pix - n_dead
    dead = np.zeros(config.n_pix, dtype=bool)
    dead[rng.choice(config.n_pix, n_dead, replace=False)] = True
    valid = np.ones(T, dtype=bool)
    valid[rng.choice(T, int(round(config.drop_fraction * T)), replace=False)] = False
    rate = config.nbar * beam_intensity(config.beam_rms, T, rng) * valid
    if config.drift:
        rate = rate * drift_profile(config.drift, T)
    modes = mode_numbers(config.beta, n_live)
    yield n_live, valid, dead, modes
    m_hi = int(modes.max(initial=1))
    step = max(1, _FIELDS_PER_CHUNK // (m_hi * T))
    half = n_live // 2
    for lo, hi, h in ((0, half, 0), (half, n_live, 1)):
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            e = sampler.draw((stop - start) * m_hi, rng).reshape(stop - start, m_hi, T)
            power = np.abs(e) ** 2 * (np.arange(m_hi) < modes[start:stop, None])[..., None]
            intensity = power.sum(axis=1, dtype=np.float64) / modes[start:stop, None]
            yield h, rng.poisson(rate * intensity).astype(np.float64)


def two_time(
    gram: np.ndarray,
    sums: np.ndarray,
    n: int | np.ndarray,
    dropped: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The estimator C = n G / (s s^T) from pixel sums (also the correlator's).

    Args:
        gram: G(t1, t2) = sum_p n_p(t1) n_p(t2), shape (..., T, T), full (both triangles).
        sums: s(t) = sum_p n_p(t), shape (..., T).
        n: number of pixels summed, shape (...).
        dropped: frames without data, shape (T,), bool, or None.
        out: array of shape (T, T) (one map, e.g. float32) to fill in blocks of rows, so that
            no float64 temporary of the map's size is made; or None.

    Returns:
        C, shape (..., T, T), float64 (or ``out``); NaN in the rows and columns of frames
        without counts and of dropped frames.
    """
    sums = np.asarray(sums, dtype=np.float64)
    bad = sums <= 0 if dropped is None else (sums <= 0) | np.asarray(dropped, dtype=bool)
    s = np.where(bad, np.nan, sums)
    n = np.asarray(n, dtype=np.float64)[..., None, None]
    if out is None:
        return n * gram / (s[..., :, None] * s[..., None, :])
    rows = max(1, 2**22 // out.shape[-1])  # 32 MiB of float64 at a time
    for r0 in range(0, out.shape[0], rows):
        r1 = min(r0 + rows, out.shape[0])
        out[r0:r1] = n[..., 0, 0] * gram[r0:r1] / (s[r0:r1, None] * s[None, :])
    return out


def two_time_from_counts(counts: np.ndarray, live: np.ndarray | None = None) -> np.ndarray:
    """The estimator from count frames.

    Args:
        counts: n_p(t), shape (N_pix, T).
        live: pixels to use, shape (N_pix,), bool; None uses all.

    Returns:
        C, shape (T, T), float64.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if live is not None:
        counts = counts[np.asarray(live, dtype=bool)]
    return two_time(counts.T @ counts, counts.sum(axis=0), counts.shape[0])


def _measure_one(sampler: _Sampler, config: MeasurementConfig, rng: np.random.Generator):
    chunks = _count_chunks(sampler, config, rng)
    n_live, valid, _, modes = next(chunks)
    gram = np.zeros((2, sampler.T, sampler.T))
    sums = np.zeros((2, sampler.T))
    for h, counts in chunks:
        gram[h] += counts.T @ counts
        sums[h] += counts.sum(axis=0)
    n_half = np.array([n_live // 2, n_live - n_live // 2])
    with np.errstate(invalid="ignore", divide="ignore"):
        C = two_time(gram.sum(axis=0), sums.sum(axis=0), n_live, ~valid)
        halves = two_time(gram, sums, n_half, ~valid)
    return C, halves[0], halves[1], np.mean(1.0 / modes), n_live, valid


def _stack(results: list) -> Measurement:
    return Measurement(*(np.stack([np.asarray(r[k]) for r in results]) for k in range(6)))


def measure(F: np.ndarray, config: MeasurementConfig, rng: np.random.Generator) -> Measurement:
    """Simulate photon-counting frames from F and estimate the two-time maps (general route).

    Args:
        F: normalised intermediate scattering functions F(t1, t2), complex Hermitian PSD with
            unit diagonal, shape (T, T) or (n, T, T).
        config: the measurement constants.
        rng: the only source of randomness.

    Returns:
        A :class:`Measurement`; its fields have the leading shape of F without the (T, T).
    """
    F = np.asarray(F)
    batch = F.reshape(-1, *F.shape[-2:])
    out = [_measure_one(_Sampler(F.shape[-1], psd_factor(f), None), config, rng) for f in batch]
    stacked = _stack(out)
    return Measurement(*(a.reshape(F.shape[:-2] + a.shape[1:]) for a in stacked))


def measure_factors(
    t: np.ndarray,
    gamma: float | np.ndarray,
    c: float | np.ndarray,
    u: np.ndarray,
    config: MeasurementConfig,
    rng: np.random.Generator,
) -> Measurement:
    """Simulate the measurement of F = (1 - c) exp(-gamma |t2 - t1|) + c u u^H / N_x.

    The bulk field is an exact AR(1) recursion; a GB factor u with N_x > T is first thinned to
    its numerical rank (same covariance, so the same distribution).

    Args:
        t: frame times in s, shape (T,).
        gamma: bulk rate D q^2 in 1/s, scalar or shape (n,).
        c: GB fraction, scalar or shape (n,).
        u: GB phase factors exp(i q h(x, t)), shape (T, N_x) or (n, T, N_x), complex.
        config: the measurement constants.
        rng: the only source of randomness.

    Returns:
        A :class:`Measurement`, with a leading batch axis when u has one.
    """
    t = np.asarray(t, dtype=np.float64)
    u = np.asarray(u)
    batch = u.reshape(-1, *u.shape[-2:])
    gammas = np.broadcast_to(np.asarray(gamma, dtype=np.float64), batch.shape[:1])
    cs = np.broadcast_to(np.asarray(c, dtype=np.float64), batch.shape[:1])
    out = []
    for g, ci, ui in zip(gammas, cs, batch, strict=True):
        n_x = ui.shape[1]
        gb = ui / np.sqrt(n_x) if n_x <= len(t) else psd_factor(ui @ ui.conj().T / n_x)
        out.append(_measure_one(_Sampler(len(t), None, t, float(g), float(ci), gb), config, rng))
    stacked = _stack(out)
    return Measurement(*(a.reshape(u.shape[:-2] + a.shape[1:]) for a in stacked))


def simulate_counts(
    F: np.ndarray, config: MeasurementConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The count frames behind :func:`measure` for one map (same seed, same draws).

    Args:
        F: F(t1, t2), shape (T, T).
        config: the measurement constants.
        rng: the only source of randomness.

    Returns:
        ``(counts, live, valid)``: counts n_p(t), shape (N_pix, T), float64, zero for dead pixels
        and dropped frames; live pixels, shape (N_pix,), bool; frames with data, shape (T,), bool.
    """
    chunks = _count_chunks(_Sampler(F.shape[-1], psd_factor(F), None), config, rng)
    _, valid, dead, _ = next(chunks)
    counts = np.zeros((config.n_pix, F.shape[-1]))
    counts[~dead] = np.concatenate([c for _, c in chunks])
    return counts, ~dead, valid
