"""The exact measurement model: speckle fields, photon counts and the two-time estimator."""

import numpy as np
import pytest

from gbsbi.summaries.phi import phi
from simulators.measurement import (
    MeasurementConfig,
    compose_f,
    exponential_kernel,
    measure,
    measure_factors,
    mode_numbers,
    psd_factor,
    simulate_counts,
    two_time_from_counts,
)
from simulators.noise import estimator_variance

T = 16
TIMES = np.arange(T) * 30.0  # s


def boundary_factors(rng: np.random.Generator, n_x: int = 24) -> np.ndarray:
    """GB phase factors u = exp(i q h) of a relaxing sine boundary plus a small random walk."""
    x = (np.arange(n_x) + 0.5) / n_x
    walk = np.cumsum(rng.normal(0.0, 0.1, (T, n_x)), axis=0)
    phase = 6.0 * np.exp(-TIMES / 150.0)[:, None] * np.sin(np.pi * x)[None, :] + walk
    return np.exp(1j * phase)


@pytest.fixture
def toy():
    """A non-equilibrium F (bulk rate 1/100 s, c = 0.4) and its factors."""
    u = boundary_factors(np.random.default_rng(7))
    return compose_f(TIMES, 0.01, 0.4, u), u


def off_diagonal(C: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(C.shape[-1], k=1)
    return C[..., i, j]


def test_psd_factor_reproduces_rank_deficient_f(toy):
    """A GB Gram matrix with N_x < T grid points has rank N_x: a Cholesky factor fails on it,
    the eigh factor reproduces it with N_x columns."""
    F, _ = toy
    u = boundary_factors(np.random.default_rng(8), n_x=6)
    gb = u @ u.conj().T / u.shape[1]  # rank 6 < T = 16: singular
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(gb)
    assert psd_factor(gb).shape == (T, 6)
    for M in (F, gb, np.ones((T, T))):
        L = psd_factor(M)
        np.testing.assert_allclose(L @ L.conj().T, M, atol=1e-10)
    assert psd_factor(np.ones((T, T))).shape == (T, 1)


def test_mode_mixture_meets_contrast():
    assert np.all(mode_numbers(0.25, 100) == 4)
    for beta in (0.3, 0.15, 0.7):
        modes = mode_numbers(beta, 1000)
        assert set(np.unique(modes)) <= {int(1 / beta), int(1 / beta) + 1}
        assert np.mean(1.0 / modes) == pytest.approx(beta, abs=1e-3)
        half = modes[:500]  # an even spread: each pixel half has the same mixture
        assert np.mean(1.0 / half) == pytest.approx(beta, abs=2e-3)


@pytest.mark.parametrize("route", ["general", "factors"])
def test_off_diagonal_converges_to_siegert(toy, route):
    """rms(C - (1 + beta |F|^2)) off the diagonal falls as 1 / sqrt(N_pix) to the delta-method
    prediction. A single map's rms over 120 correlated elements scatters by about 15 %, so the
    tolerance is 1.5x the prediction. The mean error must lie within 6 nominal standard errors
    sqrt(var / 120): shared frames correlate the elements, which widens its spread about 2x."""
    F, u = toy
    C0 = 1 + 0.25 * np.abs(F) ** 2
    rng = np.random.default_rng(1)
    errors = []
    for n_pix in (2_000, 50_000):
        config = MeasurementConfig(nbar=2.0, n_pix=n_pix, beta=0.25)
        if route == "general":
            m = measure(F, config, rng)
        else:
            m = measure_factors(TIMES, 0.01, 0.4, u, config, rng)
        err = off_diagonal(m.C - C0)
        predicted = np.nanmean(off_diagonal(estimator_variance(C0, 2.0, n_pix, 0.25)))
        assert np.sqrt(np.mean(err**2)) < 1.5 * np.sqrt(predicted)
        assert abs(np.mean(err)) < 6 * np.sqrt(predicted / err.size)
        errors.append(np.sqrt(np.mean(err**2)))
    assert errors[1] < errors[0] / 3  # sqrt(25) = 5 expected


def test_equilibrium_limit_is_exact_exponential():
    """c = 0: C = 1 + beta exp(-2 gamma tau) (STYLE oracle); the TTI map has Phi near 0."""
    rng = np.random.default_rng(2)
    u = np.ones((T, 4), dtype=complex)
    m = measure_factors(TIMES, 0.02, 0.0, u, MeasurementConfig(nbar=5.0, n_pix=40_000), rng)
    C0 = 1 + 0.2 * exponential_kernel(TIMES, 0.02) ** 2
    assert np.max(np.abs(off_diagonal(m.C - C0))) < 0.01  # ~5 sd of one element
    assert phi(m.C_a, m.C_b) < 0.05


def test_diagonal_carries_poisson_self_term(toy):
    F, _ = toy
    m = measure(F, MeasurementConfig(nbar=0.5, n_pix=40_000, beta=0.2), np.random.default_rng(3))
    np.testing.assert_allclose(np.diag(m.C), 1 + 0.2 + 1 / 0.5, rtol=0.02)


def test_beam_fluctuation_cancels_in_the_ratio(toy):
    F, _ = toy
    C0 = 1 + 0.2 * np.abs(F) ** 2
    config = MeasurementConfig(nbar=2.0, n_pix=40_000, beta=0.2, beam_rms=0.5)
    m = measure(F, config, np.random.default_rng(4))
    assert abs(np.mean(off_diagonal(m.C - C0))) < 2e-3


def test_dead_pixels_are_excluded(toy):
    F, _ = toy
    config = MeasurementConfig(nbar=1.0, n_pix=4_000, beta=0.2, dead_fraction=0.25)
    m = measure(F, config, np.random.default_rng(5))
    counts, live, valid = simulate_counts(F, config, np.random.default_rng(5))
    assert m.n_live == live.sum() == 3_000
    assert np.all(counts[~live] == 0) and counts[live].sum() > 0
    np.testing.assert_allclose(m.C, two_time_from_counts(counts, live))
    # Counting the dead pixels would inflate C by 1 / (1 - 0.25); excluding them does not.
    C0 = 1 + 0.2 * np.abs(F) ** 2
    assert abs(np.mean(off_diagonal(m.C - C0))) < 0.01
    biased = two_time_from_counts(counts)
    assert np.mean(off_diagonal(biased / C0)) == pytest.approx(4 / 3, rel=0.02)


def test_dropped_frames_give_nan_rows_and_columns(toy):
    F, _ = toy
    config = MeasurementConfig(nbar=0.5, n_pix=1_000, drop_fraction=0.25)
    m = measure(F, config, np.random.default_rng(6))
    bad = ~m.valid
    assert bad.sum() == 4
    for C in (m.C, m.C_a, m.C_b):
        assert np.all(np.isnan(C[bad])) and np.all(np.isnan(C[:, bad]))
        assert np.all(np.isfinite(C[np.ix_(~bad, ~bad)]))
    assert np.isfinite(phi(m.C)) and np.isfinite(phi(m.C_a, m.C_b))


def test_same_seed_same_bytes(toy):
    F, u = toy
    config = MeasurementConfig(nbar=0.3, n_pix=3_000, beta=0.3, beam_rms=0.1, dead_fraction=0.1)
    a = measure(F, config, np.random.default_rng(8))
    b = measure(F, config, np.random.default_rng(8))
    c = measure(F, config, np.random.default_rng(9))
    assert a.C.tobytes() == b.C.tobytes() and a.C_a.tobytes() == b.C_a.tobytes()
    assert a.C.tobytes() != c.C.tobytes()
    x = measure_factors(TIMES, 0.01, 0.4, u, config, np.random.default_rng(8))
    y = measure_factors(TIMES, 0.01, 0.4, u, config, np.random.default_rng(8))
    assert x.C.tobytes() == y.C.tobytes()


def test_half_maps_are_independent_estimates(toy):
    """Each half has twice the full map's noise variance, and the halves' errors are
    uncorrelated (|r| < 0.1 over 240 elements of 2 maps: 3.5 standard errors)."""
    F, _ = toy
    C0 = 1 + 0.2 * np.abs(F) ** 2
    config = MeasurementConfig(nbar=0.2, n_pix=10_001, beta=0.2)
    m = measure(np.stack([F, F]), config, np.random.default_rng(10))
    assert m.C.shape == m.C_a.shape == (2, T, T) and m.n_live.tolist() == [10_001, 10_001]
    ea, eb, e = (off_diagonal(x - C0).ravel() for x in (m.C_a, m.C_b, m.C))
    assert abs(np.corrcoef(ea, eb)[0, 1]) < 0.1
    assert np.mean(ea**2) / np.mean(e**2) == pytest.approx(2.0, rel=0.3)
    assert np.mean(eb**2) / np.mean(e**2) == pytest.approx(2.0, rel=0.3)
