"""Calibration tells the three cases apart (as lampe tests it): an exact posterior covers at the
nominal level, one too wide covers more (conservative), one too narrow less (overconfident);
first on an analytic posterior, then for a flow trained by gbsbi's loop on a problem whose
posterior is known."""

import numpy as np
import pytest

from gbsbi.diagnostics.calibration import (
    central_coverage,
    interval_contains,
    r2_score,
    ranks,
    rmse,
)

LEVELS = np.round(np.arange(0.1, 0.91, 0.1), 1)


def gaussian_case(scale: float, n: int = 2000, draws: int = 500, seed: int = 0):
    """theta ~ N(0, 1), x ~ N(theta, s^2) with a flat prior: the posterior is N(x, s^2).
    Draws come from N(x, (scale s)^2)."""
    rng = np.random.default_rng(seed)
    s = 0.3
    theta = rng.standard_normal((n, 2))
    x = theta + s * rng.standard_normal((n, 2))
    samples = x[None] + scale * s * rng.standard_normal((draws, n, 2))
    return samples, theta


def test_exact_posterior_covers_at_the_nominal_level():
    samples, theta = gaussian_case(1.0)
    coverage = central_coverage(ranks(samples, theta), LEVELS)
    # n = 2000: the binomial sd is at most 0.011; 0.04 is 3.5 sd, and the rank statistic of
    # 500 draws moves the level by less than 0.002.
    np.testing.assert_allclose(coverage, LEVELS[:, None].repeat(2, 1), atol=0.04)


def test_too_wide_posterior_is_conservative_and_too_narrow_overconfident():
    from scipy.stats import norm

    wide = central_coverage(ranks(*gaussian_case(2.0)), LEVELS)
    narrow = central_coverage(ranks(*gaussian_case(0.5)), LEVELS)
    # Draws from N(x, (k s)^2) cover the truth at level a with probability
    # 2 Phi(k z_a) - 1, z_a = Phi^-1((1 + a) / 2): 0.82 (k = 2) and 0.26 (k = 0.5) at a = 0.5.
    for k, coverage in ((2.0, wide), (0.5, narrow)):
        expected = 2 * norm.cdf(k * norm.ppf((1 + LEVELS) / 2)) - 1
        np.testing.assert_allclose(coverage, expected[:, None].repeat(2, 1), atol=0.04)
    assert np.all(wide[:-1] > LEVELS[:-1, None] + 0.05)
    assert np.all(narrow > LEVELS[:, None] - 0.5) and np.all(narrow[1:] < LEVELS[1:, None] - 0.05)


def test_interval_contains_matches_central_coverage():
    samples, theta = gaussian_case(1.0, n=500)
    direct = interval_contains(samples, theta, 0.9).mean(0)
    via_ranks = central_coverage(ranks(samples, theta), np.array([0.9]))[0]
    np.testing.assert_allclose(direct, via_ranks, atol=0.01)


def test_r2_and_rmse_on_known_values():
    truth = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
    np.testing.assert_allclose(r2_score(truth, truth), [1.0, 1.0])
    np.testing.assert_allclose(r2_score(truth, np.full_like(truth, truth.mean(0))), [0.0, 0.0])
    estimate = truth + np.array([1.0, -1.0])
    np.testing.assert_allclose(rmse(truth, estimate), [1.0, 1.0])
    # SS_res = 4, SS_tot = 5 per column
    np.testing.assert_allclose(r2_score(truth, estimate), [1 - 4 / 5, 1 - 4 / 5])


torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_a_trained_flow_is_calibrated_and_its_distortions_are_told_apart():
    """The whole learning side: sbi's NSF trained by gbsbi's loop on x = u + noise with u
    uniform on the cube (the posterior is a truncated Gaussian, which the flow must learn),
    then sampled through sbi's DirectPosterior under BoxUniform."""
    from sbi.inference import DirectPosterior

    from gbsbi.inference.flow import FlowConfig, build_flow, unit_box
    from gbsbi.inference.training import TrainConfig, TrainingSet, train

    g = torch.Generator().manual_seed(0)
    u = torch.rand(4000, 3, generator=g)
    x = u + 0.1 * torch.randn(4000, 3, generator=g)
    torch.manual_seed(0)
    flow = build_flow(torch.nn.Identity(), FlowConfig(transforms=3, hidden=32), u, x)
    train(flow, TrainingSet(x, u), TrainConfig(epochs=40, batch_size=128, patience=5))
    posterior = DirectPosterior(flow, unit_box())
    u_test = torch.rand(500, 3, generator=g)
    x_test = u_test + 0.1 * torch.randn(500, 3, generator=g)
    torch.manual_seed(1)
    samples = posterior.sample_batched((400,), x=x_test, show_progress_bars=False,
                                      max_sampling_batch_size=200).numpy()
    truth = u_test.numpy()
    exact = central_coverage(ranks(samples, truth), LEVELS)
    # 500 test cases: binomial sd at most 0.022; 0.08 allows 3.5 sd plus the flow's own
    # approximation error after a few seconds of training.
    np.testing.assert_allclose(exact, LEVELS[:, None].repeat(3, 1), atol=0.08)
    centre = samples.mean(0, keepdims=True)
    wide = central_coverage(ranks(centre + 2 * (samples - centre), truth), LEVELS)
    narrow = central_coverage(ranks(centre + 0.5 * (samples - centre), truth), LEVELS)
    middle = LEVELS == 0.5
    assert np.all(wide[middle] > 0.65) and np.all(narrow[middle] < 0.35)
