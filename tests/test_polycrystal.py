"""A polycrystal's boundaries and the measurement's drift and dropped frames as nuisances
(docs/model.md#polycrystal): the single boundary is today's model to the byte, K identical
boundaries are one boundary, boundaries of several lengths average by length, the nuisances are
kept in the bank, and bad ranges are one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest

from gbsbi.bank import BankSpec, block_rng, simulate_bank, simulate_block
from gbsbi.cli import main
from gbsbi.summaries.phi import phi
from simulators.config import (
    SINGLE_BOUNDARY,
    ConfigError,
    ExperimentConfig,
    MeasurementPrior,
    Prior,
    SamplePrior,
)
from simulators.gb import _gb_correlation, boundary_phase, scattering_parts, two_time_maps
from simulators.measurement import drift_profile
from simulators.noise import noisy_maps
from simulators.polycrystal import noiseless_maps, sample_phase

SMALL = ExperimentConfig(n_frames=48)
SINGLE = SINGLE_BOUNDARY
STEADY = MeasurementPrior(drift=(0.0, 0.0), dropped=(0.0, 0.0))


def test_one_boundary_without_spread_is_the_single_boundary_model_to_the_byte():
    prior = Prior()
    theta, temperature = prior.sample(20, np.random.default_rng(0))
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    single = SINGLE.sample(20, rng_a)  # draws nothing
    ours = noiseless_maps(theta, temperature, SMALL, single, rng_a)
    np.testing.assert_array_equal(ours, two_time_maps(theta, temperature, SMALL, rng_b))


def test_a_measured_bank_of_one_boundary_and_a_steady_beam_is_the_old_bank_to_the_byte():
    """The block as the single-boundary model made it: prior, counts / N_pix / beta, the
    boundary's phase, the fast noise model; the same seed gives the same bytes."""
    spec = BankSpec(SMALL, Prior(age=(0.0, 0.0)), n=16, seed=3, block_size=16,
                    measurement="fast", nuisance=STEADY, sample=SINGLE)  # the old bank: no ages
    ours = simulate_block(spec, 0)
    rng = block_rng(3, 0)
    theta, temperature = spec.prior.sample(16, rng)
    u = rng.random((16, 3))  # what MeasurementPrior.sample drew before drift and dropped
    counts = np.exp(np.log(0.01) + u[:, 0] * (np.log(1.0) - np.log(0.01)))
    n_pix = np.round(np.exp(np.log(1e3) + u[:, 1] * (np.log(1e5) - np.log(1e3))))
    beta = 0.1 + u[:, 2] * 0.2
    real, imag = scattering_parts(theta, temperature, SMALL, rng)
    clean = 1 + beta.astype(np.float32)[:, None, None] * (real**2 + imag**2)
    C = noisy_maps(clean, counts[:, None], n_pix, beta, rng, beam_rms=0.0, halves=False)
    np.testing.assert_array_equal(ours["C"], C)
    np.testing.assert_array_equal(ours["phi_noiseless"], phi(clean))
    assert "boundaries" not in ours  # nothing stored for the single boundary


def _noiseless_gb(config: ExperimentConfig, lengths: np.ndarray) -> np.ndarray:
    """F_GB of boundaries without thermal noise (T = 0 K), complex, shape (T, T)."""
    theta = np.array([[1e-4, 0.1, 1.0]])
    phase, weights = sample_phase(theta, np.zeros(1), config, {"lengths": lengths[None]},
                                  np.random.default_rng(0))
    real, imag = _gb_correlation(phase, weights, config.n_x)
    return real[0] + 1j * imag[0]


def test_k_identical_noiseless_boundaries_give_the_one_boundary_f():
    config = replace(SMALL, L=100.0)
    one = boundary_phase(np.array([0.1]), np.zeros(1), config, np.random.default_rng(0))
    real, imag = _gb_correlation(one)
    # float32 products summed in another order: 1e-5 is far below anything a map resolves
    np.testing.assert_allclose(_noiseless_gb(config, np.ones(4)), real[0] + 1j * imag[0],
                               atol=1e-5)


def test_boundaries_of_several_lengths_average_by_length():
    config = SMALL
    lengths = np.array([0.6, 1.0, 1.5])
    mixed = _noiseless_gb(config, lengths)
    alone = [_noiseless_gb(replace(config, L=config.L * r), np.ones(1)) for r in lengths]
    expected = sum(r * f for r, f in zip(lengths, alone, strict=True)) / lengths.sum()
    np.testing.assert_allclose(mixed, expected, atol=1e-5)


def test_a_tilted_boundary_sees_the_momentum_transfer_q_cos_phi():
    """A boundary whose normal is at phi to q has the phase q cos(phi) h: the F_GB of a
    boundary at q' = q cos(phi) along q, from the same heights (same seed)."""
    theta = np.array([[1e-4, 0.1, 1.0]])
    tilt = 0.55
    tilted = {"lengths": np.ones((1, 1)), "tilt": np.full((1, 1), tilt)}
    phase, _ = sample_phase(theta, np.full(1, 600.0), SMALL, tilted, np.random.default_rng(4))
    along, _ = sample_phase(theta, np.full(1, 600.0), replace(SMALL, q=SMALL.q * tilt), None,
                            np.random.default_rng(4))
    assert np.abs(phase).max() > 0.5  # a phase that matters
    # float32 products in another order: 1e-5 rad is far below anything a map resolves
    np.testing.assert_allclose(phase, along, atol=1e-5)


def test_all_static_scatterers_never_decorrelate():
    """f = 1: nothing moves, F = 1 and C = 1 + beta everywhere; f = 0: the plain map."""
    theta, temperature = Prior().sample(4, np.random.default_rng(1))
    lengths = np.ones((4, 1))
    frozen = noiseless_maps(theta, temperature, SMALL,
                            {"lengths": lengths, "static": np.full(4, 1.0)},
                            np.random.default_rng(2))
    np.testing.assert_allclose(frozen, 1 + SMALL.beta, atol=1e-6)
    plain = noiseless_maps(theta, temperature, SMALL, {"lengths": lengths, "static": np.zeros(4)},
                           np.random.default_rng(2))
    np.testing.assert_array_equal(plain, two_time_maps(theta, temperature, SMALL,
                                                       np.random.default_rng(2)))


def test_the_exact_measurement_carries_static_scatterers_as_one_more_column():
    """with_static's factors give (1 - c') F_eq + c' u' u'^H / (N + 1) = f + (1 - f) F, the
    F of sample_parts, for weighted boundaries of several lengths."""
    from simulators.gb import bulk_correlation, phase_field
    from simulators.polycrystal import sample_parts, with_static

    theta, temperature = Prior().sample(3, np.random.default_rng(5))
    sample = {"lengths": np.array([[0.6, 1.0, 1.5]] * 3), "static": np.array([0.0, 0.2, 0.6])}
    real, imag = sample_parts(theta, temperature, SMALL, sample, np.random.default_rng(6))
    phase, weights = sample_phase(theta, temperature, SMALL, sample, np.random.default_rng(6))
    u, c = with_static(phase_field(phase), weights, theta[:, 2], sample["static"])
    gb = np.einsum("ntj,nsj->nts", u.astype(np.complex128), u.conj()) / u.shape[2]
    F = (1 - c)[:, None, None] * bulk_correlation(theta[:, 0], SMALL) + c[:, None, None] * gb
    # float32 phases and products: 1e-5 is far below anything a map resolves
    np.testing.assert_allclose(F, real + 1j * imag, atol=1e-5)


def test_the_sample_nuisances_are_drawn_and_kept_in_the_bank(tmp_path):
    sample = SamplePrior(boundaries=(2, 5), length_spread=(0.1, 0.4), tilt=(0.4, 0.9),
                         static=(0.05, 0.2))
    spec = BankSpec(SMALL, Prior(), n=24, seed=1, block_size=8, measurement="fast",
                    sample=sample)
    simulate_bank(tmp_path / "b.h5", spec)
    with h5py.File(tmp_path / "b.h5", "r") as f:
        k, spread = f["boundaries"][()], f["length_spread"][()]
        lengths = f["boundary_lengths"][()]
        tilt, static = f["boundary_tilt"][()], f["static"][()]
        recorded = json.loads(f.attrs["config"])
        drift, dropped = f["drift"][()], f["dropped"][()]
        C = f["C"][()]
    assert np.all((k >= 2) & (k <= 5)) and len(np.unique(k)) > 1
    assert np.all((spread >= 0.1) & (spread <= 0.4))
    assert np.array_equal((lengths > 0).sum(axis=1), k)
    assert np.all((tilt >= 0.4) & (tilt <= 0.9)) and np.all((static >= 0.05) & (static <= 0.2))
    assert SamplePrior.from_dict(recorded["sample"]) == sample
    assert np.all(np.abs(drift) <= 0.9) and np.all((dropped >= 0) & (dropped <= 0.1))
    # dropped frames are NaN rows: round(f T) of them per map
    missing = np.isnan(C).all(axis=2).sum(axis=1)
    assert np.array_equal(missing, np.round(dropped * SMALL.n_frames).astype(int))


def test_a_drifting_beam_changes_the_noise_not_the_mean_map():
    """b(t) cancels in the estimator's mean; a beam that fades leaves the late frames with
    fewer photons and noisier. 400 maps: the mean maps agree within 5 sd of their difference,
    and the late rows' scatter exceeds the early rows' by more than 20 %."""
    rng = np.random.default_rng(0)
    clean = np.full((400, 48, 48), 1.1, dtype=np.float32)
    beta = np.full(400, 0.2)
    counts = 0.05 * drift_profile(np.full(400, -1.2), 48)
    drifted = noisy_maps(clean, counts, 2e4, beta, rng, halves=False)
    steady = noisy_maps(clean, np.full((400, 1), 0.05), 2e4, beta, rng, halves=False)
    off = ~np.eye(48, dtype=bool)
    diff = (drifted.mean(0) - steady.mean(0))[off]
    se = np.sqrt((drifted.var(0) + steady.var(0))[off] / 400)
    assert np.abs(diff.mean()) < 5 * np.sqrt(np.mean(se**2) / off.sum()) + 1e-3
    spread = drifted.std(0)
    assert spread[40:, :8].mean() > 1.2 * spread[8:16, :8].mean()
    assert drift_profile(0.7, 48).mean() == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("bad", [
    {"sample": {"boundaries": [3, 1]}},
    {"sample": {"length_spread": [-0.1, 0.2]}},
    {"sample": {"boundaries": [1.5, 2]}},
    {"sample": {"tilt": [0.0, 0.5]}},
    {"sample": {"tilt": [0.5, 1.2]}},
    {"sample": {"static": [0.2, 1.0]}},
    {"measurement": {"drift": [0.5, -0.5]}},
    {"measurement": {"dropped": [0.0, 1.5]}},
])
def test_bad_nuisance_ranges_are_one_line_errors(tmp_path, capsys, bad):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(bad))
    capsys.readouterr()
    assert main(["simulate", "--n", "4", "--out", str(tmp_path / "b.h5"), "--config",
                 str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith("gbsbi simulate")


def test_ranges_are_checked_in_python_too():
    with pytest.raises(ConfigError):
        SamplePrior(boundaries=(0, 2))
    with pytest.raises(ConfigError):
        MeasurementPrior(drift=(-2.5, 0.0))
