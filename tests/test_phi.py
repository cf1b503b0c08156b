"""The non-equilibrium measure Phi against a plain loop and its defining properties."""

import numpy as np
import pytest
from scipy.linalg import toeplitz

from gbsbi.summaries.phi import drift, phi


def phi_loop(C: np.ndarray) -> float:
    """Phi of docs/phi.md#definition by the definition, one pair at a time, skipping NaN entries."""
    T = C.shape[0]
    by_lag = {k: [C[i, i + k] for i in range(T - k) if np.isfinite(C[i, i + k])]
              for k in range(1, T)}
    c_tti = {k: np.mean(v) for k, v in by_lag.items() if v}
    values, drifts = [], []
    for i in range(T):
        for j in range(i + 1, T):
            if np.isfinite(C[i, j]):
                values.append(C[i, j])
                drifts.append(C[i, j] - c_tti[j - i])
    return np.mean(np.square(drifts)) / np.var(values)


def random_map(rng: np.random.Generator, T: int = 24) -> np.ndarray:
    a = rng.normal(size=(T, T))
    return 1 + 0.1 * (a + a.T)


def test_matches_the_definition():
    rng = np.random.default_rng(0)
    maps = np.stack([random_map(rng) for _ in range(5)])
    expected = [phi_loop(m) for m in maps]
    np.testing.assert_allclose(phi(maps), expected, rtol=1e-12)


def test_nan_rows_and_columns_are_ignored():
    rng = np.random.default_rng(1)
    m = random_map(rng)
    m[[3, 10], :] = np.nan
    m[:, [3, 10]] = np.nan
    np.testing.assert_allclose(phi(m), phi_loop(m), rtol=1e-12)
    assert np.isfinite(phi(m))


def test_zero_for_toeplitz_maps_even_with_dropped_frames():
    rng = np.random.default_rng(2)
    m = toeplitz(1 + rng.random(40))
    assert phi(m) < 1e-12
    m[7, :] = m[:, 7] = np.nan
    assert phi(m) < 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_lies_in_unit_interval(seed):
    rng = np.random.default_rng(seed)
    maps = np.stack([random_map(rng, 30) for _ in range(8)])
    maps[::2] += toeplitz(rng.random(30)) * 3  # mixtures of TTI and non-TTI parts
    values = phi(maps)
    assert np.all((values >= 0) & (values <= 1))


def test_variance_decomposition():
    """var(C) = var(C_TTI over pairs) + mean(dC^2): the identity that bounds Phi by 1."""
    m = random_map(np.random.default_rng(3), 20)
    c_tti, dC = drift(m)
    i, j = np.triu_indices(20, 1)
    assert np.isclose(np.var(m[i, j]), np.var(c_tti[j - i - 1]) + np.mean(dC**2))


def test_split_half_with_identical_halves_is_plain_phi():
    m = random_map(np.random.default_rng(4))
    assert np.isclose(phi(m, m), phi(m))


def test_split_half_removes_independent_noise():
    """Independent noise on two halves inflates the plain Phi but cancels in the split form."""
    rng = np.random.default_rng(5)
    T = 64
    t = np.arange(T)
    clean = 1 + 0.2 * np.exp(-np.abs(t[:, None] - t[None, :]) / 10)  # Toeplitz: Phi = 0
    halves = []
    for _ in range(2):
        noise = rng.normal(scale=0.02, size=(T, T))
        halves.append(clean + (noise + noise.T) / 2)
    assert phi(halves[0]) > 0.05
    # The split form is an average of products of independent zero-mean noises: its scatter
    # on one 64-frame map is about 0.01.
    assert abs(phi(halves[0], halves[1])) < 0.03


def test_all_nan_map_gives_nan():
    assert np.isnan(phi(np.full((10, 10), np.nan)))


def test_split_half_without_shared_signal_is_nan():
    """Halves whose covariance is not positive share no signal: the split-half Phi is
    undefined (NaN), not 0."""
    m = random_map(np.random.default_rng(6))
    assert np.isnan(phi(m, 2 - m))  # covariance < 0
    assert np.isnan(phi(np.ones((12, 12)), np.ones((12, 12))))  # covariance 0
    assert phi(np.ones((12, 12))) == 0  # the plain Phi of a constant (Toeplitz) map


def test_long_maps_go_in_groups_of_lags_with_the_same_result(monkeypatch):
    """A map too large for one pass is worked through in groups of lags (bounded memory at
    10,000 frames); the value is the one-pass value to rounding."""
    import gbsbi.summaries.phi as module

    rng = np.random.default_rng(7)
    maps = np.stack([random_map(rng, 50) for _ in range(3)])
    maps[1, 4, :] = maps[1, :, 4] = np.nan
    other = maps + 0.01 * rng.normal(size=maps.shape)
    whole, split = phi(maps), phi(maps, other)
    monkeypatch.setattr(module, "PAIRS_PER_PASS", 100)
    assert len(module._lag_groups(50, 1)) > 10
    np.testing.assert_allclose(phi(maps), whole, rtol=1e-12)
    np.testing.assert_allclose(phi(maps, other), split, rtol=1e-12)
