"""Network inputs: graded bins, the reduced map without its diagonal, the lag profile and the
scalars, checked on maps with a known answer (the c = 0 limit is Toeplitz with Phi = 0)."""

import numpy as np
import pytest

from gbsbi.inference.inputs import (
    SCALARS,
    InputConfig,
    InputLayout,
    bin_edges,
    lag_profile,
    network_inputs,
    reduce_map,
)
from simulators.config import ExperimentConfig
from simulators.gb import two_time_maps


@pytest.mark.parametrize(("n", "bins", "grading"), [(128, 32, 2.0), (127, 32, 2.0), (64, 16, 0.0),
                                                    (40, 32, 3.0), (32, 32, 2.0)])
def test_bin_edges_cover_every_item_once(n, bins, grading):
    edges = bin_edges(n, bins, grading)
    assert edges[0] == 0 and edges[-1] == n and len(edges) == bins + 1
    assert np.all(np.diff(edges) >= 1)
    if grading > 0 and n >= 4 * bins:
        widths = np.diff(edges)
        assert widths[:4].mean() < widths[-4:].mean()


def test_uniform_bins_are_blocks():
    np.testing.assert_array_equal(np.diff(bin_edges(64, 16, 0.0)), np.full(16, 4))


def test_too_few_items_is_an_error():
    with pytest.raises(ValueError, match="cannot make 32 bins of 20"):
        bin_edges(20, 32, 2.0)


def _toeplitz(T: int = 128, beta: float = 0.2, rate: float = 0.003) -> np.ndarray:
    """c = 0: C = 1 + beta exp(-2 gamma tau), tau in frames of the default window."""
    k = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :])
    return (1 + beta * np.exp(-2 * rate * k * 2000 / T))[None].astype(np.float32)


def test_reduced_map_is_the_block_mean_without_the_diagonal():
    C = _toeplitz()
    edges = bin_edges(128, 32, 2.0)
    reduced, fraction = reduce_map(C, edges)
    np.testing.assert_array_equal(fraction, 1.0)
    # the diagonal is never used: replacing it changes nothing
    noisy = C.copy()
    noisy[0, np.arange(128), np.arange(128)] = 1000.0
    np.testing.assert_array_equal(reduce_map(noisy, edges)[0], reduced)
    # an off-diagonal block is the plain mean of C - 1 over it
    a, b = 20, 5
    block = C[0, edges[a]:edges[a + 1], edges[b]:edges[b + 1]] - 1
    assert reduced[0, a, b] == pytest.approx(block.mean(), rel=1e-5)
    # a diagonal block uses the lag-one neighbours in place of the diagonal
    lag1 = C[0, 0, 1] - 1
    block = C[0, edges[a]:edges[a + 1], edges[a]:edges[a + 1]] - 1
    w = edges[a + 1] - edges[a]
    expected = (block.sum() - np.trace(block) + w * lag1) / w**2
    assert reduced[0, a, a] == pytest.approx(expected, rel=1e-5)


def test_dropped_frames_leave_the_means_and_show_in_the_valid_fraction():
    C = _toeplitz(rate=0.0003)
    edges = bin_edges(128, 32, 0.0)  # 4 frames a bin
    C[0, 9, :] = np.nan
    C[0, :, 9] = np.nan
    reduced, fraction = reduce_map(C, edges)
    assert fraction[0, 2] == pytest.approx(0.75) and np.all(np.delete(fraction[0], 2) == 1)
    assert not np.isnan(reduced).any()
    full = reduce_map(_toeplitz(rate=0.0003), edges)[0]
    assert reduced[0, 2, 20] == pytest.approx(full[0, 2, 20], rel=2e-3)  # smooth map
    C[0, 8:12, :] = np.nan
    C[0, :, 8:12] = np.nan
    reduced, fraction = reduce_map(C, edges)
    assert fraction[0, 2] == 0 and np.all(reduced[0, 2] == 0)


def test_lag_profile_of_a_toeplitz_map_is_its_binned_correlation():
    C = _toeplitz()
    edges = bin_edges(127, 32, 2.0)
    profile = lag_profile(C, edges)
    k = np.arange(1, 128)
    g = C[0, 0, 1:] - 1  # C_TTI(k) - 1 for lags 1..127
    weights = 128 - k
    for a in (0, 10, 31):
        sel = slice(edges[a], edges[a + 1])
        expected = np.sum(g[sel] * weights[sel]) / weights[sel].sum()
        assert profile[0, a] == pytest.approx(expected, rel=1e-5)


def test_scalars_in_the_c_zero_limit():
    """c = 0: the exact simulator gives a Toeplitz map, Phi = 0 exactly (the oracle of
    docs/model.md#known-limits)."""
    config = ExperimentConfig()
    theta = np.array([[2e-4, 0.3, 0.0], [1e-4, 0.1, 0.0]])
    maps = two_time_maps(theta, np.array([300.0, 500.0]), config, np.random.default_rng(0))
    x = network_inputs(maps, np.array([300.0, 500.0]), InputConfig())
    layout = InputLayout(32)
    scalars = x[:, layout.scalars]
    assert x.shape == (2, layout.size) and x.dtype == np.float32
    np.testing.assert_allclose(scalars[:, SCALARS.index("phi")], 0.0, atol=1e-6)
    np.testing.assert_allclose(scalars[:, SCALARS.index("temperature")], [-1.0, 1.0])
    # the lag profile is beta exp(-2 D q^2 tau) binned
    lags = x[:, layout.lags]
    tau = np.arange(1, 128) * config.frame_time
    edges = bin_edges(127, 32, 2.0)
    first = config.beta * np.exp(-2 * theta[0, 0] * tau[edges[0]:edges[1]])
    assert lags[0, 0] == pytest.approx(first.mean(), rel=1e-4)


def test_inputs_have_no_nan_for_noise_only_and_dropped_maps():
    rng = np.random.default_rng(1)
    C = (1 + 0.5 * rng.standard_normal((2, 128, 128))).astype(np.float32)
    C = (C + np.swapaxes(C, 1, 2)) / 2
    C[1, 7, :] = np.nan
    C[1, :, 7] = np.nan
    x = network_inputs(C, np.array([400.0, 400.0]), InputConfig())
    assert np.isfinite(x).all()
    scalars = x[:, InputLayout(32).scalars]
    flag = scalars[:, SCALARS.index("noise_only")]
    corrected = scalars[:, SCALARS.index("phi_corrected")]
    assert set(np.unique(flag)) <= {0.0, 1.0}
    assert np.all(corrected[flag == 1] == 0)
