"""Calibration tells the three cases apart (as lampe tests it): an exact posterior covers at the
nominal level, one too wide covers more (conservative), one too narrow less (overconfident);
first on an analytic posterior, then for a flow trained by gbsbi's loop on a problem whose
posterior is known."""

import numpy as np
import pytest

from gbsbi.validation.calibration import (
    binomial_band,
    central_coverage,
    hpd_coverage,
    hpd_levels,
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

    from gbsbi.inference.config import FlowConfig, TrainConfig
    from gbsbi.inference.flow import build_flow, unit_box
    from gbsbi.inference.loop import TrainingSet
    from gbsbi.inference.npe.train import train

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


def _hpd_case(k: float):
    """Joint highest-density levels of the 2-D Gaussian case, with the approximate
    posterior's own density N(x, (k s)^2 I) (its normalisation cancels)."""
    rng = np.random.default_rng(0)
    s = 0.3
    theta = rng.standard_normal((2000, 2))
    x = theta + s * rng.standard_normal((2000, 2))
    samples = x[None] + k * s * rng.standard_normal((500, 2000, 2))
    scale = 2 * (k * s) ** 2
    return hpd_levels(-((samples - x) ** 2).sum(-1) / scale, -((theta - x) ** 2).sum(-1) / scale)


@pytest.mark.parametrize("k", [1.0, 2.0, 0.5])
def test_joint_hpd_coverage_is_exact_conservative_or_overconfident(k):
    """For 2-D Gaussians the truth's squared distance is s^2 chi2_2 and a draw's k^2 s^2 chi2_2,
    so the HPD level of the truth is h = 1 - exp(-r^2 / 2k^2) and the coverage at level a is
    1 - (1 - a)^(k^2): the diagonal for k = 1, above it for k = 2, below for k = 0.5."""
    coverage = hpd_coverage(_hpd_case(k), LEVELS)
    # n = 2000: binomial sd at most 0.011; 0.04 is 3.5 sd (plus < 0.002 from 500 draws)
    np.testing.assert_allclose(coverage, 1 - (1 - LEVELS) ** (k**2), atol=0.04)


def test_binomial_band_holds_95_percent_of_calibrated_coverages():
    rng = np.random.default_rng(3)
    band = binomial_band(np.array([0.5, 0.9]), 400)
    covered = rng.binomial(400, [0.5, 0.9], size=(4000, 2)) / 400
    inside = ((covered >= band[0]) & (covered <= band[1])).mean(0)
    # a discrete band holds at least 95 %; 4000 repeats give a sd of 0.0035
    assert np.all(inside >= 0.94) and np.all(inside <= 0.99)


torch_sbc = pytest.importorskip("torch")


def test_drawn_serves_sbi_run_sbc_the_same_ranks_as_ours():
    from sbi.diagnostics import run_sbc

    from gbsbi.inference.sbi_tools import Drawn

    samples, theta = gaussian_case(1.0, n=300, draws=200)
    draws = torch_sbc.as_tensor(samples, dtype=torch_sbc.float32)
    truth = torch_sbc.as_tensor(theta, dtype=torch_sbc.float32)
    x = torch_sbc.arange(len(theta), dtype=torch_sbc.float32)[:, None]
    sbc_ranks, dap = run_sbc(truth, x, Drawn(draws, x), num_posterior_samples=200,
                             show_progress_bar=False)
    np.testing.assert_allclose(sbc_ranks.numpy() / 200, ranks(samples, theta))
    torch_sbc.testing.assert_close(dap, draws[0])
    with pytest.raises(ValueError, match="only the draws"):
        Drawn(draws, x).sample_batched((100,), x)


@pytest.mark.slow
@pytest.mark.parametrize(("k", "calibrated"), [(1.0, True), (2.0, False), (0.5, False)])
def test_sbi_sbc_and_tarp_on_drawn_analytic_posteriors(k, calibrated):
    """sbi's run_sbc/check_sbc and run_tarp/check_tarp through :class:`Drawn` on the
    Gaussian case: ranks equal ours; the exact posterior passes the KS tests (fixed seed,
    p > 0.01), the too wide and too narrow ones fail them (p < 1e-6 with 2000 cases), and
    TARP's area to curve (ATC) has the sign of the distortion. sbi's ECP is a cumulative
    histogram read at the bins' right edges, which puts ATC about +0.02 for an exact posterior
    (0.016-0.022 over seeds 0-2); too wide gives about +0.08, too narrow about -0.04, so the
    bounds below sit half-way."""
    from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp

    from gbsbi.inference.sbi_tools import Drawn

    samples, theta = gaussian_case(k)
    draws = torch_sbc.as_tensor(samples, dtype=torch_sbc.float32)
    truth = torch_sbc.as_tensor(theta, dtype=torch_sbc.float32)
    x = torch_sbc.arange(len(theta), dtype=torch_sbc.float32)[:, None]
    posterior = Drawn(draws, x)
    torch_sbc.manual_seed(0)
    sbc_ranks, dap = run_sbc(truth, x, posterior, num_posterior_samples=500,
                             show_progress_bar=False)
    np.testing.assert_allclose(sbc_ranks.numpy(), (samples < theta[None]).sum(0))
    figures = check_sbc(sbc_ranks, truth[torch_sbc.randperm(len(truth))], dap, 500)
    ecp, alpha = run_tarp(truth, x, posterior, num_posterior_samples=500,
                          show_progress_bar=False)
    atc, tarp_ks = check_tarp(ecp, alpha)
    if calibrated:
        assert (figures["ks_pvals"] > 0.01).all() and 0 < atc < 0.05 and tarp_ks > 0.05
    else:
        assert (figures["ks_pvals"] < 1e-6).all() and tarp_ks < 0.01
        assert (atc > 0.05) if k > 1 else (atc < -0.01)


def test_draws_in_the_cube_are_paired_with_their_input_and_log_density():
    """Each draw of draw_in_cube lies in the cube and carries log q(u | x) of its own x (a
    mix-up of draws and inputs would give other log-densities)."""
    from gbsbi.inference.config import FlowConfig
    from gbsbi.inference.flow import build_flow, log_prob_given
    from gbsbi.inference.npe.predict import draw_in_cube

    g = torch_sbc.Generator().manual_seed(0)
    u = torch_sbc.rand(500, 3, generator=g)
    x = 3 * torch_sbc.randn(500, 3, generator=g)
    torch_sbc.manual_seed(0)
    flow = build_flow(torch_sbc.nn.Identity(), FlowConfig(transforms=2, hidden=16), u, x)
    for p in flow.parameters():  # a flow whose density depends strongly on x
        p.data.normal_(0, 0.3)
    xs = x[:7]
    draws, log_q = draw_in_cube(flow, xs, 50, batch=3)
    assert draws.shape == (50, 7, 3) and ((draws >= 0) & (draws <= 1)).all()
    with torch_sbc.no_grad():
        again = log_prob_given(flow, draws.reshape(-1, 3), xs.repeat(50, 1)).reshape(50, 7)
    torch_sbc.testing.assert_close(log_q, again, atol=1e-4, rtol=1e-4)
