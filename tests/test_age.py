"""The window's age (docs/model.md#age): age 0 is today's simulator to the byte, a window
simulated at age t_w is distributed as one cut at t_w from a longer simulation, banks draw and
keep ages, the network sees them, and `gbsbi infer` reports them."""

from __future__ import annotations

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest

from gbsbi.bank import BankSpec, simulate_bank
from gbsbi.io.mapsfile import Maps
from gbsbi.summaries.phi import phi
from simulators.config import ConfigError, ExperimentConfig, Prior, SamplePrior
from simulators.gb import two_time_maps
from simulators.polycrystal import noiseless_maps

SMALL = ExperimentConfig(n_frames=32, window=500.0, n_x=32, n_modes=16)


def test_age_zero_is_the_simulator_to_the_byte():
    theta, temperature = Prior().sample(8, np.random.default_rng(0))
    single = noiseless_maps(theta, temperature, SMALL, {"age": np.zeros(8)},
                            np.random.default_rng(1))
    np.testing.assert_array_equal(single, two_time_maps(theta, temperature, SMALL,
                                                        np.random.default_rng(1)))
    sample = SamplePrior().sample(8, np.random.default_rng(2))
    aged = noiseless_maps(theta, temperature, SMALL, {**sample, "age": np.zeros(8)},
                          np.random.default_rng(3))
    np.testing.assert_array_equal(aged, noiseless_maps(theta, temperature, SMALL, sample,
                                                       np.random.default_rng(3)))


def test_a_window_at_age_tw_is_distributed_as_one_cut_from_a_longer_map():
    """400 maps at sigma = 0.1 J/m^2 (initial shape relaxing in ~1,000 s at this L, so a
    window at t_w = 1,000 s still differs from a fresh one): the mean map and the mean Phi
    of windows simulated at age t_w agree with windows cut at t_w from maps three windows long
    within 4 standard errors, while fresh windows differ by more than 8 (the test can fail)."""
    n, age = 400, 1000.0
    theta = np.tile([[1e-4, 0.1, 0.9]], (n, 1))
    temperature = np.full(n, 400.0)
    aged = noiseless_maps(theta, temperature, SMALL, {"age": np.full(n, age)},
                          np.random.default_rng(4)).astype(np.float64)
    long = replace(SMALL, n_frames=96, window=1500.0)  # same frame spacing, frames 64.. at t_w
    cut = noiseless_maps(theta, temperature, long, None,
                         np.random.default_rng(5))[:, 64:, 64:].astype(np.float64)
    fresh = noiseless_maps(theta, temperature, SMALL, None,
                           np.random.default_rng(6)).astype(np.float64)

    def z(a: np.ndarray, b: np.ndarray) -> float:
        """The mean over the map's elements of the difference of means, in standard errors."""
        diff = (a.mean(0) - b.mean(0)).mean()
        se = np.sqrt((a.mean(axis=(1, 2)).var(ddof=1) + b.mean(axis=(1, 2)).var(ddof=1)) / n)
        return abs(diff) / se

    assert z(aged, cut) < 4
    assert z(fresh, cut) > 8
    phi_aged, phi_cut = phi(aged), phi(cut)
    se = np.sqrt((phi_aged.var(ddof=1) + phi_cut.var(ddof=1)) / n)
    assert abs(phi_aged.mean() - phi_cut.mean()) < 4 * se


def test_a_bank_draws_and_keeps_ages_and_the_network_sees_them(tmp_path):
    from gbsbi.inference.data import bank_inputs
    from gbsbi.inference.inputs import InputConfig

    prior = Prior(age=(0.0, 3000.0))
    spec = BankSpec(SMALL, prior, n=16, seed=2, block_size=8, measurement="fast")
    simulate_bank(tmp_path / "b.h5", spec)
    with h5py.File(tmp_path / "b.h5", "r") as f:
        ages = f["age"][()]
        assert Prior.from_dict(json.loads(f.attrs["config"])["prior"]).age == (0.0, 3000.0)
    assert np.all((ages >= 0) & (ages <= 3000)) and np.ptp(ages) > 0
    plain = bank_inputs(tmp_path / "b.h5", InputConfig(16, 2.0, prior.temperature))
    aged = bank_inputs(tmp_path / "b.h5", InputConfig(16, 2.0, prior.temperature, prior.age))
    assert aged.x.shape[1] == plain.x.shape[1] + 1
    np.testing.assert_allclose(aged.x[:, -1], (2 * ages - 3000) / 3000, rtol=1e-6)
    np.testing.assert_array_equal(aged.x[:, :-1], plain.x)


def test_bad_age_ranges_are_config_errors():
    with pytest.raises(ConfigError):
        Prior(age=(100.0, 0.0))
    with pytest.raises(ConfigError):
        Prior(age=(-5.0, 10.0))
    with pytest.raises(ConfigError):
        Prior(age=(0.0, 10.0), age_zero=1.0)
    assert Prior(age=(0.0, 0.0)).age_zero == 0  # no ages: no share at age 0 either


def test_a_share_of_windows_at_age_zero_and_the_rest_uniform():
    mixed = Prior(age=(0.0, 4000.0), age_zero=0.5)
    ages = mixed.sample_age(20_000, np.random.default_rng(3))
    # 20,000 Bernoulli(0.5) draws: the share's sd is 0.0035, so 0.02 is over five sd.
    assert abs(np.mean(ages == 0) - 0.5) < 0.02
    rest = ages[ages > 0]
    # Uniform over (0, 4000): the mean of 10,000 has sd 11.5 s; 60 s is over five sd.
    assert abs(rest.mean() - 2000) < 60 and rest.max() <= 4000
    # Without the share nothing more is drawn: the ages of banks made before it, to the byte.
    uniform = Prior(age=(0.0, 4000.0), age_zero=0.0)
    np.testing.assert_array_equal(uniform.sample_age(50, np.random.default_rng(4)),
                                  np.random.default_rng(4).random(50) * 4000.0)
    assert Prior.from_dict(mixed.to_dict()) == mixed
    # A prior recorded before age_zero existed drew its ages uniformly; one recorded before
    # ages existed had none; one without ages records no share, as before it existed.
    assert Prior.from_record({"age": [0.0, 4000.0]}).age_zero == 0
    assert not Prior.from_record({}).aged
    assert "age_zero" not in Prior(age=(0.0, 0.0)).to_dict()


def _windows(ages: list[float], measurement: str = "run") -> Maps:
    n = len(ages)
    C = np.ones((n, 4, 4), np.float32) + np.arange(n, dtype=np.float32)[:, None, None]
    return Maps(C, np.arange(4.0), np.full(n, 400.0), np.full(n, 1.0),
                scan=np.array([f"{measurement}@{a:g}s" for a in ages]), age=np.array(ages))


def test_overlapping_windows_of_one_measurement_are_thinned_with_a_message():
    """Windows of 2,000 s every 1,000 s: every other one shares frames with its neighbour and is
    left out; another measurement's windows at the same ages stay."""
    from gbsbi.group.files import _without_overlaps

    one = _windows([0.0, 1000.0, 2000.0, 3000.0, 4000.0])
    other = _windows([0.0, 1000.0], "second")
    both = Maps(np.concatenate([one.C, other.C]), one.t, np.full(7, 400.0), np.full(7, 1.0),
                scan=np.concatenate([one.scan, other.scan]),
                age=np.concatenate([one.age, other.age]))
    said = []
    kept = _without_overlaps(np.arange(7), both, 2000.0, "g", said.append)
    assert list(both.scan[kept]) == ["run@0s", "run@2000s", "run@4000s", "second@0s"]
    assert len(said) == 1 and "run@1000s" in said[0] and "second@1000s" in said[0]
    assert list(_without_overlaps(np.arange(3), _windows([0.0, 2000.0, 4000.0]), 2000.0, "g",
                                  said.append)) == [0, 1, 2]


def test_a_model_without_ages_warns_about_aged_windows_and_one_with_ages_about_old_ones():
    from gbsbi.inference.data import temperature_warnings

    maps = _windows([0.0, 2000.0, 9000.0])
    fresh = temperature_warnings(maps, Prior(age=(0.0, 0.0)))
    assert len(fresh) == 2 and all("knows no ages" in line for line in fresh)
    aged = temperature_warnings(maps, Prior(age=(0.0, 4000.0)))
    assert len(aged) == 1 and "run@9000s" in aged[0] and "outside" in aged[0]


def test_posterior_files_and_tables_carry_the_age(tmp_path):
    from gbsbi.io.posteriors import (
        PosteriorDraws,
        draws_from_data,
        format_table,
        read_posterior,
        summary_rows,
        write_posterior,
    )
    from gbsbi.plots.posterior import intervals_plot

    rng = np.random.default_rng(0)
    theta = Prior().sample(4 * 50 * 3, rng)[0].reshape(2, 100, 3, 3)
    draws = PosteriorDraws(theta, np.array(["a@0s", "a@2000s", "a@4000s"]), np.full(3, 400.0),
                           np.full(3, 1.0), np.zeros(3), np.zeros(3),
                           age=np.array([0.0, 2000.0, 4000.0]))
    write_posterior(tmp_path / "p.nc", draws, {"model": "m"})
    back = draws_from_data(read_posterior(tmp_path / "p.nc"))
    np.testing.assert_array_equal(back.age, [0.0, 2000.0, 4000.0])
    rows = summary_rows(back)
    assert [r["age"] for r in rows] == [0.0, 2000.0, 4000.0]
    assert "age [s]" in format_table(rows).splitlines()[1]
    assert intervals_plot(back, Prior(), tmp_path / "i.png").stat().st_size > 0


def test_predictive_replicates_start_at_the_scans_age():
    """A window of a long measurement is replicated at its own age: age 0 is the replicate
    as before to the byte, a later age other maps from the same random numbers."""
    from gbsbi.validation.ppc import replicate_maps
    from simulators.config import MeasurementPrior

    config = replace(SMALL, n_frames=32)
    steady = MeasurementPrior(drift=(0.0, 0.0), dropped=(0.0, 0.0))
    C = 1 + 0.2 * np.exp(-np.abs(np.subtract.outer(config.t, config.t)) / 500.0)
    draws = np.array([[5e-5, 0.03, 0.45]] * 4)
    plain, _ = replicate_maps(draws, 400.0, C, config, steady, np.random.default_rng(1))
    zero, _ = replicate_maps(draws, 400.0, C, config, steady, np.random.default_rng(1), age=0.0)
    old, _ = replicate_maps(draws, 400.0, C, config, steady, np.random.default_rng(1),
                            age=2000.0)
    np.testing.assert_array_equal(plain, zero)
    assert not np.allclose(old, plain)
