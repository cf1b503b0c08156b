"""The fast noise model against the exact one, and the noise-corrected Phi."""

import numpy as np
import pytest

from gbsbi.summaries.phi import phi
from gbsbi.summaries.phi_noise import (
    estimate_noise_var,
    phi_corrected,
    smooth_drift_basis,
    smooth_energy,
)
from simulators.measurement import MeasurementConfig, compose_f, measure
from simulators.noise import estimator_variance, noisy_maps


def random_f(rng: np.random.Generator, T: int, window: float = 2000.0) -> np.ndarray:
    """A GB-like F: exponential bulk kernel plus the Gram matrix of a relaxing boundary's phase
    field h(x, t) = h0 exp(-r t) sin(pi x / L) + a small random walk, u = exp(i q h)."""
    t = np.arange(T) * window / T
    n_x = 64
    x = (np.arange(n_x) + 0.5) / n_x
    walk = np.cumsum(
        rng.normal(0.0, np.sqrt(2 * 10 ** rng.uniform(-6, -3.5) * window / T), (T, n_x)), axis=0
    )
    qh0, rate = 10 ** rng.uniform(0.5, 2.0), 10 ** rng.uniform(-3.3, -2.0)
    phase = qh0 * np.exp(-rate * t)[:, None] * np.sin(np.pi * x)[None, :] + walk
    return compose_f(t, 10 ** rng.uniform(-3.0, -1.0), rng.uniform(0.0, 0.6), np.exp(1j * phase))


def off_diagonal(C: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(C.shape[-1], k=1)
    return C[..., i, j]


@pytest.mark.parametrize(("nbar", "n_pix"), [(0.1, 2_000), (1.0, 2_000), (0.03, 5_000)])
def test_variance_matches_exact_model(nbar, n_pix):
    """Per-element variance over 300 exact replicates: the delta-method formula and the fast
    model each within 15 % of it (pooled over 66 elements, the estimate's standard error is
    about 3 %; the study checks the full grid)."""
    T, beta, reps = 12, 0.2, 300
    rng = np.random.default_rng(11)
    F = random_f(rng, T)
    C0 = 1 + beta * np.abs(F) ** 2
    exact = measure(np.broadcast_to(F, (reps, T, T)), MeasurementConfig(nbar, n_pix, beta), rng)
    fast = noisy_maps(np.broadcast_to(C0, (4 * reps, T, T)), nbar, n_pix, beta, rng)
    v_exact = np.mean(off_diagonal(np.var(exact.C, axis=0)))
    v_fast = np.mean(off_diagonal(np.var(fast.astype(np.float64), axis=0)))
    v_formula = np.nanmean(estimator_variance(C0, nbar, n_pix, beta))
    assert v_fast / v_exact == pytest.approx(1.0, abs=0.15)
    assert v_formula / v_exact == pytest.approx(1.0, abs=0.15)
    # Per element too: the median ratio (each from 300 and 1200 draws, +-10 %) within 15 %.
    ratio = off_diagonal(np.var(fast.astype(np.float64), axis=0) / np.var(exact.C, axis=0))
    assert np.median(ratio) == pytest.approx(1.0, abs=0.15)


def test_phi_distribution_matches_exact_model():
    """The plain Phi under noise at 1 photon per pixel per frame, where the speckle noise's
    correlations shape its spread: medians within 0.01 (the exact median's standard error is
    0.003) and spreads within 20 % (the exact sd's standard error from 150 maps is 6 %)."""
    rng = np.random.default_rng(21)
    F = random_f(rng, 32)
    C0 = 1 + 0.2 * np.abs(F) ** 2
    exact = phi(measure(np.broadcast_to(F, (150, 32, 32)), MeasurementConfig(1.0, 2_000), rng).C)
    fast = phi(noisy_maps(np.broadcast_to(C0, (1500, 32, 32)), 1.0, 2_000, 0.2, rng))
    assert np.median(fast) == pytest.approx(np.median(exact), abs=0.01)
    assert np.std(fast) / np.std(exact) == pytest.approx(1.0, abs=0.2)


def test_variance_formula_limits():
    """beta -> 0: pure shot noise 1 / (N mu1 mu2); high counts: speckle beta^2 + s^2."""
    C0 = np.full((3, 3), 1.0)
    np.testing.assert_allclose(off_diagonal(estimator_variance(C0, 0.1, 100, 1e-9)), 1.0, rtol=1e-6)
    mu = np.array([0.1, 0.2, 0.4])
    var = estimator_variance(C0, mu, 100, 1e-9)
    np.testing.assert_allclose(var[0, 2], 1 / (100 * 0.1 * 0.4), rtol=1e-6)
    assert np.all(np.isnan(np.diag(var)))
    beta = 1e-3  # Gaussian speckle limit, counts -> infinity
    C0 = np.array([[1 + beta, 1 + beta / 2], [1 + beta / 2, 1 + beta]])
    var = estimator_variance(C0, 1e9, 1, beta)
    assert var[0, 1] == pytest.approx(beta**2 + (beta / 2) ** 2, rel=0.01)


def test_fast_model_contract():
    rng = np.random.default_rng(12)
    C0 = np.stack([1 + 0.2 * np.abs(random_f(rng, 32)) ** 2 for _ in range(3)])
    out = noisy_maps(C0, 0.1, 10_000, 0.2, np.random.default_rng(0))
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    again = noisy_maps(C0, 0.1, 10_000, 0.2, np.random.default_rng(0))
    assert out.tobytes() == again.tobytes()
    np.testing.assert_allclose(out, np.swapaxes(out, -1, -2))
    C, C_a, C_b = noisy_maps(C0, 0.1, 10_001, 0.2, rng, halves=True)
    ea, eb, e = (off_diagonal(x - C0).ravel() for x in (C_a, C_b, C))
    assert abs(np.corrcoef(ea, eb)[0, 1]) < 0.05
    assert np.var(ea) / np.var(e) == pytest.approx(2.0, rel=0.1)
    # Per-frame counts with a dropped frame (nbar = 0), per-map N_pix, beam fluctuations.
    nbar = np.full((3, 32), 0.5)
    nbar[:, 5] = 0.0
    out = noisy_maps(C0, nbar, np.array([1e3, 1e4, 1e5]), 0.2, rng, beam_rms=0.2)
    assert np.all(np.isnan(out[:, 5])) and np.all(np.isnan(out[:, :, 5]))
    assert np.isfinite(np.delete(np.delete(out, 5, 1), 5, 2)).all()


def test_fast_model_mean_converges():
    rng = np.random.default_rng(13)
    C0 = 1 + 0.2 * np.abs(random_f(rng, 32)) ** 2
    out = noisy_maps(np.broadcast_to(C0, (50, 32, 32)), 1.0, 100_000, 0.2, rng)
    assert np.max(np.abs(off_diagonal(out.mean(axis=0) - C0))) < 2e-3  # 5 sd of the mean


def test_smooth_basis_is_orthonormal_drift():
    B = smooth_drift_basis(40)
    assert B.shape == (40 * 39 // 2, 48)
    np.testing.assert_allclose(B.T @ B, np.eye(48), atol=1e-12)
    lags = np.concatenate([np.full(40 - k, k) for k in range(1, 40)])
    sums = np.stack([np.bincount(lags, weights=b) for b in B.T])
    np.testing.assert_allclose(sums, 0.0, atol=1e-12)  # no diagonal mean: pure drift
    x = np.random.default_rng(0).normal(size=(3, B.shape[0]))
    np.testing.assert_allclose(smooth_energy(x), np.sum((x @ B) ** 2, axis=-1), rtol=1e-10)


def test_noise_estimate_and_correction_on_white_noise():
    """Known white noise on GB-like maps: s2 recovered within 5 % (8128 elements: 2 % standard
    error) once the map's own roughness is taken off (the finite-N_x phase average of the
    random walk puts up to 4 % of this s2 outside the smooth drift), Phi_corr within 0.03 of the
    noiseless Phi in the median, while the plain Phi is pushed up."""
    rng = np.random.default_rng(14)
    C0 = np.stack([1 + 0.2 * np.abs(random_f(rng, 128)) ** 2 for _ in range(8)])
    noise = rng.normal(0.0, 0.05, C0.shape)
    C = C0 + (noise + np.swapaxes(noise, -1, -2)) / np.sqrt(2)
    rough = estimate_noise_var(C0)
    assert np.all(rough < 0.05 * 0.05**2)
    np.testing.assert_allclose(estimate_noise_var(C) - rough, 0.05**2, rtol=0.05)
    # Noiseless: the rough part of the drift is lost with the noise (up to 0.04 on these maps).
    assert np.median(np.abs(phi_corrected(C0) - phi(C0))) < 0.01
    np.testing.assert_allclose(phi_corrected(C0), phi(C0), atol=0.05)
    assert np.median(np.abs(phi_corrected(C) - phi(C0))) < 0.03
    assert np.median(phi(C) - phi(C0)) > 0.1
    # The known expected variance works too, less precisely: it misses the realised noise's
    # fluctuation, which the map's own estimate tracks. Dropped frames are tolerated.
    assert np.median(np.abs(phi_corrected(C, noise_var=0.05**2) - phi(C0))) < 0.05
    C[:, [3, 50, 51], :] = np.nan
    C[:, :, [3, 50, 51]] = np.nan
    np.testing.assert_allclose(estimate_noise_var(C) - rough, 0.05**2, rtol=0.05)
    assert np.all(np.isfinite(phi_corrected(C)))


def test_tti_map_corrects_to_zero():
    """c = 0 under strong photon noise: the plain Phi is near 1, the corrected one near 0."""
    t = np.arange(128) * 2000 / 128
    F = compose_f(t, 0.005, 0.0, np.ones((128, 2)))
    C0 = np.broadcast_to(1 + 0.2 * np.abs(F) ** 2, (10, 128, 128))
    C = noisy_maps(C0, 0.05, 20_000, 0.2, np.random.default_rng(15))
    assert np.median(phi(C)) > 0.8
    assert np.median(phi_corrected(C)) < 0.05


def _criterion_errors(maps: np.ndarray, C0: np.ndarray) -> tuple[float, float]:
    """Median |Phi - Phi_noiseless| of the corrected and the plain Phi. A NaN Phi_corr (a map
    whose variance does not exceed the noise: nearly flat maps) counts as an error of 1."""
    p0 = phi(C0)
    corrected = np.nan_to_num(np.abs(phi_corrected(maps) - p0), nan=1.0)
    return float(np.median(corrected)), float(np.median(np.abs(phi(maps) - p0)))


def test_phi_correction_criterion_fast_noise():
    """Issue criterion on fast-model maps (0.05 counts, 20,000 pixels, 128 frames): median
    |Phi_corr - Phi_noiseless| <= 0.05 over 40 maps. The study finds about 0.03 on 200 maps;
    the median of 40 scatters by about +-0.008."""
    rng = np.random.default_rng(16)
    C0 = np.stack([1 + 0.2 * np.abs(random_f(rng, 128)) ** 2 for _ in range(40)])
    corrected, plain = _criterion_errors(noisy_maps(C0, 0.05, 20_000, 0.2, rng), C0)
    assert corrected <= 0.05
    assert plain > 0.5


@pytest.mark.slow
def test_phi_correction_criterion_exact_noise():
    """The same criterion on exact-model pseudo-experiments (16 maps, about 10 s)."""
    rng = np.random.default_rng(17)
    F = np.stack([random_f(rng, 128) for _ in range(16)])
    m = measure(F, MeasurementConfig(nbar=0.05, n_pix=20_000, beta=0.2), rng)
    corrected, plain = _criterion_errors(m.C, 1 + 0.2 * np.abs(F) ** 2)
    assert corrected <= 0.05
    assert plain > 0.5


def test_beta_below_the_maps_contrast_is_a_clear_error():
    """A beta below the map's own contrast (its largest C - 1) is not the diagonal excess of a
    noiseless map: a ValueError that says so, not numpy's LinAlgError."""
    C0 = 1 + 0.2 * np.abs(random_f(np.random.default_rng(18), 16)) ** 2
    with pytest.raises(ValueError, match="below the contrast of map 0"):
        noisy_maps(C0, 0.1, 1_000, 0.1, np.random.default_rng(0))


def test_low_rank_factor_keeps_every_variance():
    """The pivoted Cholesky factor of S = C - 1 (beta on the diagonal): the residual variances
    are below FACTOR_TOL x beta and exact with e (S_tt = (L^T L)_tt + e_t), the residual's
    off-diagonal part is bounded by the same tolerance (it is PSD), and the rank is far below
    T on the simulator's maps over the default prior (the point of the factor: about 10-30 of
    128 frames)."""
    from simulators.config import ExperimentConfig, Prior
    from simulators.gb import two_time_maps
    from simulators.noise import FACTOR_TOL, speckle_factor

    rng = np.random.default_rng(19)
    theta, temperature = Prior().sample(64, rng)
    C0 = two_time_maps(theta, temperature, ExperimentConfig(n_frames=64), rng)
    L, e, rank = speckle_factor(C0, np.full(64, 0.2))
    S = C0.astype(np.float64) - 1
    S[:, np.arange(64), np.arange(64)] = 0.2
    assert np.median(rank) < 64 // 4
    approx = np.swapaxes(L, 1, 2).astype(np.float64) @ L
    np.testing.assert_allclose(np.diagonal(approx, axis1=1, axis2=2) + e, 0.2, atol=1e-5)
    assert np.all(e <= FACTOR_TOL * 0.2 + 1e-6)
    assert np.max(np.abs(S - approx)) <= FACTOR_TOL * 0.2 + 1e-5
