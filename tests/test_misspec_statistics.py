"""The statistics of the per-scan misspecification test on known distributions: conformal
p-values are uniform for exchangeable scans, the Cauchy combination of uniform p-values is
uniform, the subspace residual and the predictive discrepancy see what they are built to see.
Fixed seeds throughout; each tolerance says why it is what it is."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gbsbi.validation.statistics import (
    Subspace,
    cauchy_combination,
    conformal_pvalues,
    discrepancy_pvalue,
    predictive_pvalues,
    trend_profile,
)


@pytest.mark.parametrize("larger", [True, False])
def test_conformal_pvalues_are_uniform_for_scans_like_the_null(larger):
    """2,000 repetitions of (a null of 100, one fresh value) from the same distribution: p is
    uniform on {1/101, ..., 1}. P(p <= 0.05) is then 5/101; binomial sd over 2,000 is 0.005,
    so 3 sd is 0.015."""
    rng = np.random.default_rng(0)
    p = np.array([conformal_pvalues(rng.standard_normal(100), rng.standard_normal(1), larger)[0]
                  for _ in range(2000)])
    assert abs((p <= 0.05).mean() - 5 / 101) < 0.015
    assert abs(p.mean() - 0.5) < 0.02  # sd of the mean of 2,000 uniforms: 0.0065, 3 sd
    assert p.min() >= 1 / 101 and p.max() <= 1.0


def test_conformal_pvalues_point_the_right_way():
    null = np.arange(10.0)
    assert conformal_pvalues(null, np.array([100.0]), True)[0] == pytest.approx(1 / 11)
    assert conformal_pvalues(null, np.array([-100.0]), False)[0] == pytest.approx(1 / 11)
    assert conformal_pvalues(null, np.array([-100.0]), True)[0] == 1.0
    assert np.isnan(conformal_pvalues(null, np.array([np.nan]), True)[0])


def test_the_cauchy_combination_of_uniform_pvalues_is_uniform():
    """5,000 sets of three independent uniform p-values: the combination is uniform (exactly
    Cauchy in the limit, close for three); KS p above 0.001 and the 0.05 level within 3 sd
    (binomial sd 0.003)."""
    rng = np.random.default_rng(1)
    p = cauchy_combination(rng.random((5000, 3)))
    assert stats.kstest(p, "uniform").pvalue > 1e-3
    assert abs((p < 0.05).mean() - 0.05) < 0.01


def test_the_cauchy_combination_follows_a_small_pvalue_and_skips_nan():
    assert cauchy_combination(np.array([1e-6, 0.5, 0.9])) < 1e-4
    assert cauchy_combination(np.array([0.3, np.nan])) == pytest.approx(0.3)
    assert np.isnan(cauchy_combination(np.array([np.nan, np.nan])))


def test_the_subspace_residual_sees_what_lies_off_the_simulations_plane():
    """Simulations on a 3-d plane of a 40-d space plus small noise; a scan with a part
    off the plane has a residual far above the null's."""
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.standard_normal((40, 3)))[0].T
    sims = rng.standard_normal((600, 3)) @ basis + 0.01 * rng.standard_normal((600, 40))
    columns = np.arange(40)
    subspace = Subspace.fit(sims[:300], columns)
    assert 3 <= len(subspace.components) <= 40
    null = subspace.residual(sims[300:])
    inside = rng.standard_normal((50, 3)) @ basis + 0.01 * rng.standard_normal((50, 40))
    off = inside + 0.2 * rng.standard_normal((50, 40))
    p_in = conformal_pvalues(null, subspace.residual(inside), True)
    p_off = conformal_pvalues(null, subspace.residual(off), True)
    assert np.all(p_off < 0.01) and np.median(p_in) > 0.2


def test_predictive_pvalues_are_continuous_for_a_map_like_its_replicates_and_tiny_otherwise():
    """A 'map' of 200 bins drawn like its 40 replicates gives predictive p-values spread over
    (0, 1) without ties (exchangeable draws: mean about 1/2; the normal approximation of the
    log discrepancy is not exact, so 0.1, not the 0.015 sd of the mean of 400 uniforms); one
    with a bump the replicates lack, or a Phi 5 sd away, gets one far below the 1/41 a share of
    40 replicates could give."""
    rng = np.random.default_rng(3)
    p, q = [], []
    for _ in range(400):
        reps = rng.standard_normal((40, 200))
        p_map, p_phi = predictive_pvalues(rng.standard_normal(200), reps,
                                          float(rng.standard_normal()), rng.standard_normal(40))
        p.append(p_map)
        q.append(p_phi)
    assert abs(np.mean(p) - 0.5) < 0.1 and abs(np.mean(q) - 0.5) < 0.1
    assert len(np.unique(p)) == 400 and len(np.unique(q)) == 400  # no ties
    reps = rng.standard_normal((40, 200))
    bump = rng.standard_normal(200) + np.where(np.arange(200) < 40, 3.0, 0.0)
    p_map, p_phi = predictive_pvalues(bump, reps, 5.0, rng.standard_normal(40))
    assert p_map < 1e-3 and p_phi < 1e-3


def test_the_calibrated_minimum_is_uniform_and_keeps_one_statistics_power():
    """Exchangeable scans and nulls (four correlated statistics): the calibrated minimum is
    uniform, P(p < 0.05) within 3 binomial sd (0.005 over 2,000 draws of a null of 500 and
    one scan, 0.015). Four copies of one statistic cost nothing: the combination is that
    statistic's p-value. Four independent ones cost about a factor 4 (Bonferroni): a scan
    that one alone sees at p = 1/501 is still flagged at 0.05."""
    from gbsbi.validation.statistics import loo_pvalues, min_p_combination

    rng = np.random.default_rng(4)
    mix = np.array([[1.0, 0.5, 0.2, 0.0], [0.0, 1.0, 0.4, 0.3], [0.0, 0.0, 1.0, 0.5],
                    [0.0, 0.0, 0.0, 1.0]])
    combined = []
    for _ in range(2000):
        values = rng.standard_normal((501, 4)) @ mix  # 500 null, 1 scan: exchangeable
        null_p = np.stack([loo_pvalues(values[:500, k], True) for k in range(4)], axis=-1)
        scan_p = np.stack([conformal_pvalues(values[:500, k], values[500:, k], True)
                           for k in range(4)], axis=-1)
        combined.append(min_p_combination(scan_p, null_p)[0])
    combined = np.array(combined)
    assert abs((combined < 0.05).mean() - 0.05) < 0.015
    single = rng.random(500)
    copies = np.repeat(single[:, None], 4, axis=1)
    scan = np.full((1, 4), np.sort(single)[24])
    assert min_p_combination(scan, copies)[0] == pytest.approx(26 / 501)
    null_p = rng.random((500, 4))
    one = np.array([[1 / 501, 0.5, 0.6, 0.4]])
    assert min_p_combination(one, null_p)[0] < 0.05


def _stationary(T: int = 128, rate: float = 0.02) -> np.ndarray:
    lag = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :])
    return 1 + 0.2 * np.exp(-rate * lag)


def test_the_trend_of_a_stationary_map_is_zero_and_a_drifting_contrast_has_its_sign():
    """Known answers. A map that depends on t2 - t1 only has the same mean in every part of
    the window: every band's slope is 0 (to rounding). A contrast that grows along the window,
    C - 1 -> g(t1) g(t2) (C - 1) with g rising, makes every band's slope positive, a falling
    one negative; missing frames (NaN) are left out, not propagated."""
    C = _stationary()
    assert np.abs(trend_profile(C[None])).max() < 1e-12
    for T, missing in ((128, [0, 127]), (101, []), (37, [5]), (64, [])):  # any T, edge gaps
        S = _stationary(T)
        S[missing] = np.nan
        S[:, missing] = np.nan
        slopes = trend_profile(S[None])[0]
        assert np.isfinite(slopes).sum() >= 3 and np.nanmax(np.abs(slopes)) < 1e-12, (T, slopes)
    t = np.linspace(-0.5, 0.5, 128)
    for b, sign in ((0.5, 1), (-0.5, -1)):
        g = 1 + b * t
        drifting = 1 + np.outer(g, g) * (C - 1)
        drifting[[10, 70]] = np.nan
        drifting[:, [10, 70]] = np.nan
        slopes = trend_profile(drifting[None])[0]
        assert slopes.shape == (6,) and np.all(np.isfinite(slopes))
        assert np.all(np.sign(slopes) == sign)


def test_the_trend_pvalue_sees_a_drifting_contrast_its_replicates_lack():
    """40 noisy replicates of a stationary map (noise sd 0.05 per element, about what 0.05
    photons per pixel on 20,000 pixels give) against a map like them: p spread over (0, 1)
    (mean within 0.1 of 1/2 over 200 scans, as for the map's discrepancy above); against one
    whose contrast drifts by 50 % over the window: p < 1e-3 on every one of 20 scans."""
    rng = np.random.default_rng(4)
    C = _stationary()
    t = np.linspace(-0.5, 0.5, 128)
    drifting = 1 + np.outer(1 + 0.5 * t, 1 + 0.5 * t) * (C - 1)

    def noisy(base, n):
        return base + 0.05 * rng.standard_normal((n, 128, 128))

    like, off = [], []
    for k in range(200):
        trends = trend_profile(noisy(C, 41))
        like.append(discrepancy_pvalue(trends[0], trends[1:]))
        if k < 20:
            obs = trend_profile(noisy(drifting, 1))
            off.append(discrepancy_pvalue(obs[0], trends[1:]))
    assert abs(np.mean(like) - 0.5) < 0.1 and len(np.unique(like)) == 200
    assert max(off) < 1e-3
