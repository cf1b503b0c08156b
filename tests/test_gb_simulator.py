"""The exact GB simulator against its known limits and the OU theory."""

import numpy as np
import pytest

from gbsbi.summaries.phi import phi
from simulators.config import K_B, ExperimentConfig
from simulators.gb import (
    boundary_phases,
    mode_amplitudes,
    mode_rates,
    mode_variances,
    scattering_function,
    two_time_maps,
)


@pytest.mark.parametrize("D", [0.0, 1e-4, 5e-4, 3e-3])
def test_no_gb_is_brownian_bulk(D):
    """c = 0 reproduces C = 1 + beta exp(-2 D q^2 tau) to float32 precision, with Phi = 0."""
    config = ExperimentConfig()
    theta = np.array([[D, 0.3, 0.0]])
    maps = two_time_maps(theta, np.array([400.0]), config, np.random.default_rng(1))
    tau = np.abs(config.t[:, None] - config.t[None, :])
    expected = 1 + config.beta * np.exp(-2 * D * config.q**2 * tau)
    assert maps.dtype == np.float32
    # float32 carries 24 bits: relative error below 2 ulp of values near 1.
    np.testing.assert_allclose(maps[0], expected, rtol=2.5e-7, atol=0)
    assert phi(maps)[0] < 1e-6


def test_scattering_function_is_hermitian_with_unit_diagonal():
    config = ExperimentConfig(n_frames=32)
    theta = np.array([[1e-4, 0.3, 0.4], [0.0, 3.0, 0.5]])
    F = scattering_function(theta, np.array([300.0, 500.0]), config, np.random.default_rng(2))
    np.testing.assert_allclose(F, np.conj(np.swapaxes(F, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(np.diagonal(F, axis1=1, axis2=2), 1.0, atol=1e-6)
    assert np.all(np.abs(F) <= 1 + 1e-6)


def test_maps_agree_with_complex_phase_average():
    """The fast real-arithmetic product equals F = (1-c) F_eq + c u u^H / N_x."""
    config = ExperimentConfig(n_frames=48)
    theta = np.array([[2e-4, 0.5, 0.3]])
    T = np.array([350.0])
    u = boundary_phases(theta[:, 1], T, config, np.random.default_rng(3)).astype(complex)
    f_gb = u[0] @ u[0].conj().T / config.n_x
    tau = np.abs(config.t[:, None] - config.t[None, :])
    F = 0.7 * np.exp(-2e-4 * config.q**2 * tau) + 0.3 * f_gb
    maps = two_time_maps(theta, T, config, np.random.default_rng(3))
    np.testing.assert_allclose(maps[0], 1 + config.beta * np.abs(F) ** 2, rtol=2e-6)


def test_mode_constants_in_si_units():
    """lambda_n = M sigma k_n^2 and v_n = 2 k_B T / (sigma W L k_n^2), checked in SI by hand."""
    config = ExperimentConfig()
    sigma, T = 0.5, 420.0
    k = np.arange(1, config.n_modes + 1) * np.pi / (config.L * 1e-9)  # 1/m
    rates = config.M * sigma * k**2
    var_m2 = 2 * K_B * T / (sigma * config.W * 1e-9 * config.L * 1e-9 * k**2)
    np.testing.assert_allclose(mode_rates(np.array([sigma]), config)[0], rates, rtol=1e-12)
    np.testing.assert_allclose(
        mode_variances(np.array([sigma]), np.array([T]), config)[0], var_m2 * 1e18, rtol=1e-12
    )


def test_ou_stationary_variance_and_autocorrelation():
    """Started at equilibrium, every mode keeps variance v_n and has autocorrelation
    exp(-lambda_n tau) at every lag: the update is exact for any frame spacing."""
    config = ExperimentConfig(h0=0.0, equilibrium_start=True, n_frames=16, n_modes=4,
                              window=4000.0)
    n = 20000
    sigma, T = np.full(n, 0.3), np.full(n, 400.0)
    a = mode_amplitudes(sigma, T, config, np.random.default_rng(4))
    v = mode_variances(sigma[:1], T[:1], config)[0]
    lam = mode_rates(sigma[:1], config)[0]
    # The sample variance of n Gaussian draws has relative standard error sqrt(2/n) = 1%;
    # 5% is five standard errors.
    np.testing.assert_allclose(a.var(axis=0), np.broadcast_to(v, (16, 4)), rtol=0.05)
    for lag in (1, 3, 9):
        rho = np.mean(a[:, 0] * a[:, lag], axis=0) / v
        expected = np.exp(-lam * lag * config.frame_time)
        # The standard error of a correlation estimate is at most 1/sqrt(n) = 0.007; 0.03 is
        # over four standard errors.
        np.testing.assert_allclose(rho, expected, atol=0.03)


def test_initial_shape_relaxes_at_the_first_mode_rate():
    """The mean of mode 1 decays as h0 exp(-lambda_1 t); the other modes stay at zero mean."""
    config = ExperimentConfig(n_frames=8, n_modes=3)
    n = 20000
    sigma = np.full(n, 1.0)
    a = mode_amplitudes(sigma, np.full(n, 300.0), config, np.random.default_rng(5))
    lam = mode_rates(sigma[:1], config)[0]
    v = mode_variances(sigma[:1], np.array([300.0]), config)[0]
    expected = config.h0 * np.exp(-lam[0] * config.t)
    # Standard error of the mean: sqrt(v_1 / n) < 0.01 nm; tolerance five of them.
    np.testing.assert_allclose(a[:, :, 0].mean(axis=0), expected, atol=5 * np.sqrt(v[0] / n))
    np.testing.assert_allclose(a[:, :, 1:].mean(axis=0), 0, atol=5 * np.sqrt(v[1] / n))


def test_stationary_boundary_gives_tti_maps():
    """A boundary started from its stationary distribution (h0 = 0) gives maps whose ensemble
    mean is TTI: Phi of the mean of N maps falls like 1/N (the non-TTI part is realisation noise)
    and stays far below the out-of-equilibrium case at the same parameters."""
    theta = np.tile([0.0, 0.3, 0.5], (256, 1))
    T = np.full(256, 400.0)
    eq = ExperimentConfig(h0=0.0, equilibrium_start=True)
    maps = two_time_maps(theta, T, eq, np.random.default_rng(6))
    phi_16 = np.mean([phi(m.mean(axis=0)) for m in maps.reshape(16, 16, 128, 128)])
    phi_256 = phi(maps.mean(axis=0))
    relaxing = two_time_maps(theta, T, ExperimentConfig(), np.random.default_rng(6))
    phi_relaxing = phi(relaxing.mean(axis=0))
    # 1/N scaling predicts phi_256 = phi_16 / 16; a factor 4 leaves room for the TTI signal
    # term in the denominator.
    assert phi_256 < phi_16 / 4
    assert phi_256 < 0.05
    assert phi_relaxing > 0.5


def test_same_seed_same_bytes_and_batch_consistency():
    config = ExperimentConfig(n_frames=32)
    theta = np.array([[1e-4, 0.1, 0.2], [3e-4, 2.0, 0.5]])
    T = np.array([320.0, 480.0])
    a = two_time_maps(theta, T, config, np.random.default_rng(7))
    b = two_time_maps(theta, T, config, np.random.default_rng(7))
    c = two_time_maps(theta, T, config, np.random.default_rng(8))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_default_prior_spans_phi_with_every_quarter_populated():
    """The defaults must keep Phi from under 0.01 to over 0.8 over the prior, with maps in
    every quarter of [0, 1] (README, Configuration), so a change of defaults cannot break it
    unnoticed. 1,000 maps (seed 0): the top quarter, the sparsest, holds 3.1-4.6 % of the maps
    for seeds 0-2; the bound of 1 % is 4 binomial standard deviations (0.6 %) below that."""
    from simulators.config import Prior

    rng = np.random.default_rng(0)
    theta, temperature = Prior().sample(1000, rng)
    values = phi(two_time_maps(theta, temperature, ExperimentConfig(), rng))
    assert values.min() < 0.01 and values.max() > 0.8
    counts, _ = np.histogram(values, [0, 0.25, 0.5, 0.75, 1.0])
    assert np.all(counts >= 10), counts
