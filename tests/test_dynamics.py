"""Departures of the dynamics from the stationary model (docs/model.md#dynamics): each one off is
the model, each has a limit with a known answer, the exact measurement carries them, and the
bank keeps their draws."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gbsbi.bank import BankSpec, simulate_bank
from simulators.config import (
    STATIONARY,
    ConfigError,
    ExperimentConfig,
    MeasurementPrior,
    Prior,
    SamplePrior,
)
from simulators.dynamics import bulk_term, decorrelation
from simulators.gb import bulk_correlation
from simulators.measured import measured_maps
from simulators.polycrystal import noiseless_maps, sample_parts

SMALL = ExperimentConfig(n_frames=48)
D = np.array([2e-4, 1e-3])


def test_an_exponential_steady_bulk_is_the_model():
    """g = 1, a = 0 (keys present, as for the maps of a share without departures): F_eq =
    exp(-D q^2 |t2 - t1|), the model's to the byte; a map that departs beside them does not
    change them."""
    ours = bulk_term(D, SMALL, {"stretch": np.ones(2), "rate_drift": np.zeros(2)})
    np.testing.assert_array_equal(ours, bulk_correlation(D, SMALL))
    mixed = bulk_term(D, SMALL, {"stretch": np.array([1.0, 0.7]), "rate_drift": np.zeros(2)})
    np.testing.assert_array_equal(mixed[0], bulk_correlation(D, SMALL)[0])
    assert not np.array_equal(mixed[1], bulk_correlation(D, SMALL)[1])


def test_a_stretched_bulk_decays_as_a_power_of_the_lag():
    g = np.array([0.6, 1.4])
    F = bulk_term(D, SMALL, {"stretch": g}).astype(np.float64)
    tau = SMALL.t - SMALL.t[0]
    expected = np.exp(-(D[:, None] * SMALL.q**2 * tau[None]) ** g[:, None])
    np.testing.assert_allclose(F[:, 0, :], expected, rtol=1e-5, atol=1e-7)


def test_a_drifting_rate_has_the_mean_rate_at_mid_window_and_grows_by_e_to_the_a():
    """gamma(t) = D q^2 exp(a (s - 1/2)): the decay over one frame step, -log F_eq(t, t + dt) / dt,
    is the local rate; it is D q^2 at mid-window and exp(a) times larger at the end than at the
    start."""
    a = 0.8
    F = bulk_term(D[:1], SMALL, {"rate_drift": np.array([a])})[0].astype(np.float64)
    dt = SMALL.t[1] - SMALL.t[0]
    local = -np.log(np.diagonal(F, 1)) / dt  # rate between frames k and k + 1
    gamma = D[0] * SMALL.q**2
    mid = len(local) // 2
    # the midpoint of step k is at s = (k + 1/2) / (T - 1): rate at mid within one step's change
    assert local[mid] == pytest.approx(gamma * np.exp(a * ((mid + 0.5) / 47 - 0.5)), rel=1e-3)
    assert local[-1] / local[0] == pytest.approx(np.exp(a * 46 / 47), rel=1e-3)


def test_wander_is_a_gaussian_in_the_lag_and_events_cut_the_map_into_blocks():
    lag = (SMALL.t[:, None] - SMALL.t[None, :]) / (SMALL.t[-1] - SMALL.t[0])
    w = decorrelation(SMALL, {"wander": np.array([0.7])})[0]
    np.testing.assert_allclose(w, np.exp(-(0.7 * lag) ** 2), rtol=1e-6)
    one = decorrelation(SMALL, {"events": np.array([[0.5, np.nan]]),
                                "event_fraction": np.array([0.3])})[0]
    early = SMALL.t - SMALL.t[0] < 0.5 * (SMALL.t[-1] - SMALL.t[0])
    assert np.all(one[np.ix_(early, early)] == 1) and np.all(one[np.ix_(~early, ~early)] == 1)
    np.testing.assert_allclose(one[np.ix_(early, ~early)], 0.7, rtol=1e-6)


def test_every_departure_off_draws_nothing_and_is_the_polycrystal_to_the_byte():
    theta, temperature = Prior().sample(6, np.random.default_rng(0))
    prior = STATIONARY
    assert prior.stationary and not SamplePrior().stationary  # the default carries them
    drawn = prior.sample(6, np.random.default_rng(1))
    assert not {"stretch", "rate_drift", "wander", "events"} & set(drawn)
    a = noiseless_maps(theta, temperature, SMALL, drawn, np.random.default_rng(2))
    b = noiseless_maps(theta, temperature, SMALL, {**drawn, "stretch": np.ones(6)},
                       np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)  # g = 1 rows take the model's own bulk term


def test_the_exact_measurement_carries_the_dynamics():
    """Bright, many pixels: the exact measurement of F with every departure on converges to
    1 + beta |F|^2; 3 sd of the estimator at 0.5 photons per pixel and 40,000 pixels is below
    0.02, so 0.03 on the mean over a band of lags fails on a missing factor."""
    prior = SamplePrior(boundaries=(2, 2), stretch=(0.7, 0.7), rate_drift=(0.8, 0.8),
                        wander=(0.6, 0.6), events=(2, 2), departure_share=1.0)
    rng = np.random.default_rng(3)
    theta = np.array([[1e-3, 0.1, 0.5]])
    sample = prior.sample(1, rng)
    nuisance = {"counts": np.array([0.5]), "n_pix": np.array([40_000]),
                "beta": np.array([0.2]), **sample}
    steady = MeasurementPrior(drift=(0.0, 0.0), dropped=(0.0, 0.0), dead_fraction=0.0)
    out = measured_maps(theta, np.array([400.0]), SMALL, nuisance, "exact", steady, rng)
    off = ~np.eye(48, dtype=bool)
    band = off & (np.abs(np.subtract.outer(np.arange(48), np.arange(48))) < 12)
    assert np.abs(out["C"][0] - out["C_noiseless"][0])[band].mean() < 0.03
    real, imag = sample_parts(theta, np.array([400.0]), SMALL, sample, np.random.default_rng(9))
    assert np.all(np.isfinite(real))


def test_the_bank_keeps_the_dynamics_draws(tmp_path):
    sample = SamplePrior(stretch=(0.6, 1.4), rate_drift=(-0.5, 0.5), wander=(0.0, 1.0),
                         events=(0.0, 3.0), departure_share=1.0)
    spec = BankSpec(SMALL, Prior(), n=16, seed=1, block_size=8, measurement="fast",
                    sample=sample)
    simulate_bank(tmp_path / "b.h5", spec)
    with h5py.File(tmp_path / "b.h5", "r") as f:
        g, a, w = f["stretch"][()], f["rate_drift"][()], f["wander"][()]
        count, fraction = f["event_count"][()], f["event_fraction"][()]
        C = f["C"][()]
    assert np.all((g >= 0.6) & (g <= 1.4)) and np.all(np.abs(a) <= 0.5)
    assert np.all((w >= 0) & (w <= 1)) and np.all(count >= 0) and count.max() > 0
    assert np.all((fraction >= 0.2) & (fraction <= 0.5))
    assert np.isfinite(C[~np.isnan(C)]).all()


def test_a_share_of_the_maps_carries_the_departures_the_rest_the_model():
    """departure_share p: each map carries all four departures with probability p, else none;
    the polycrystal draws are the same bytes as without a share, and a share of 1 is the same
    prior and hash as one without the key. 4,000 maps: the share's sd is 0.007, 0.03 is over
    4 sd."""
    broad = SamplePrior(departure_share=1.0)  # the default ranges on every map
    shared = SamplePrior(**{**broad.to_dict(), "departure_share": 0.3})
    every, some = (prior.sample(4000, np.random.default_rng(5)) for prior in (broad, shared))
    for key in ("boundaries", "lengths", "tilt", "static", "stretch"):
        kept = slice(None) if key != "stretch" else some["stretch"] != 1
        np.testing.assert_array_equal(every[key][kept], some[key][kept])
    carried = some["stretch"] != 1
    assert abs(carried.mean() - 0.3) < 0.03
    assert np.all(some["rate_drift"][~carried] == 0) and np.all(some["wander"][~carried] == 0)
    assert np.all(some["event_count"][~carried] == 0)
    assert np.all(np.isnan(some["events"][~carried]))
    assert np.all(some["wander"][carried] > 0)
    assert "departure_share" not in broad.to_dict()
    assert SamplePrior.from_dict(shared.to_dict()) == shared
    assert SamplePrior.from_dict({**STATIONARY.to_dict(), "departure_share": 0.3}) == STATIONARY
    # an artefact that recorded departures before the share existed carried them on every map
    assert SamplePrior.from_record(broad.to_dict()).departure_share == 1
    assert SamplePrior().departure_share == 0.05


def test_each_departure_can_be_switched_on_by_itself():
    """departure_draw each: every departure is on with probability p, independently of the
    others; the values of those on are the share-1 prior's bytes. 20,000 maps at p = 0.3: each
    rate's sd is 0.0032 and that of the joint rate of two (0.09) 0.002; the bounds are over 4
    sd. The events' switch is seen through the count, which is 0 for some maps with events on
    (a Poisson count of a mean in 0-3), so only its upper bound is tested."""
    broad = SamplePrior(departure_share=1.0)
    each = SamplePrior(**{**broad.to_dict(), "departure_share": 0.3, "departure_draw": "each"})
    every, some = (prior.sample(20000, np.random.default_rng(8)) for prior in (broad, each))
    on = {"stretch": some["stretch"] != 1, "rate_drift": some["rate_drift"] != 0,
          "wander": some["wander"] != 0}
    for key, kept in on.items():
        assert abs(kept.mean() - 0.3) < 0.015, key
        np.testing.assert_array_equal(every[key][kept], some[key][kept])
    assert abs((on["stretch"] & on["wander"]).mean() - 0.09) < 0.01  # independent switches
    alone = on["stretch"] & ~on["rate_drift"] & ~on["wander"] & (some["event_count"] == 0)
    assert alone.mean() > 0.3 * 0.7**3 - 0.015  # a stretch by itself: at least this often
    assert (some["event_count"] > 0).mean() < 0.3
    # "together" is the default and is not recorded, so earlier hashes stand
    assert "departure_draw" not in SamplePrior().to_dict()
    assert SamplePrior.from_dict(each.to_dict()) == each
    assert SamplePrior.from_record(broad.to_dict()).departure_draw == "together"


@pytest.mark.parametrize("bad", [dict(stretch=(0.5, 2.5)), dict(stretch=(0.0, 1.0)),
                                 dict(rate_drift=(0.5, -0.5)), dict(wander=(-1.0, 0.0)),
                                 dict(event_fraction=(0.2, 1.0)),
                                 dict(stretch=(0.5, 1.5), departure_share=0.0),
                                 dict(stretch=(0.5, 1.5), departure_share=1.2),
                                 dict(departure_draw="apart")])
def test_bad_dynamics_ranges_are_config_errors(bad):
    with pytest.raises(ConfigError):
        SamplePrior(**bad)
