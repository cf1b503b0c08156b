"""Banks and pseudo-experiments simulated as measured, and `gbsbi phi`."""

import json

import h5py
import numpy as np
import pytest

from gbsbi.bank import BankSpec, simulate_bank
from gbsbi.cli import main
from gbsbi.io.mapsfile import read_maps
from simulators.config import ExperimentConfig, MeasurementPrior, Prior

SMALL = ExperimentConfig(n_frames=48)


def test_fast_measured_bank_is_reproducible_and_keeps_the_nuisances(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=40, seed=2, block_size=16, measurement="fast")
    h1 = simulate_bank(tmp_path / "a.h5", spec)
    assert simulate_bank(tmp_path / "b.h5", spec) == h1
    with h5py.File(tmp_path / "a.h5", "r") as f:
        nuisance = MeasurementPrior()
        assert np.all((f["counts"][()] >= nuisance.counts[0]) &
                      (f["counts"][()] <= nuisance.counts[1]))
        assert np.all(f["n_pix"][()] == np.round(f["n_pix"][()]))
        plain = f["phi"][()]
        clean = f["phi_noiseless"][()]
        corrected = f["phi_corrected"][()]
        assert json.loads(f.attrs["config"])["measurement"] == "fast"
    # Photon noise is not TTI: the plain Phi is biased upward on (almost) every map, and the
    # correction removes most of that bias (the study gives a median error of 0.03).
    assert np.mean(plain > clean) > 0.9
    assert np.nanmedian(np.abs(corrected - clean)) < np.median(np.abs(plain - clean)) / 3


def test_measured_bank_differs_from_noiseless_bank(tmp_path):
    noiseless = BankSpec(SMALL, Prior(), n=8, seed=2, block_size=8)
    fast = BankSpec(SMALL, Prior(), n=8, seed=2, block_size=8, measurement="fast")
    assert noiseless.to_json() != fast.to_json()
    simulate_bank(tmp_path / "a.h5", noiseless)
    simulate_bank(tmp_path / "b.h5", fast)
    a, b = read_maps(tmp_path / "a.h5"), read_maps(tmp_path / "b.h5")
    np.testing.assert_array_equal(a.theta, b.theta)  # same prior draws, then noise
    assert not np.allclose(a.C, b.C)


def test_measurement_ranges_come_from_the_configuration(in_tmp):
    (in_tmp / "c.json").write_text(json.dumps({
        "experiment": {"n_frames": 32},
        "measurement": {"counts": [0.5, 0.5], "n_pix": [5000, 5000], "beta": [0.15, 0.15]}}))
    assert main(["simulate", "--n", "6", "--measurement", "fast", "--config", "c.json",
                 "--out", "b.h5"]) == 0
    with h5py.File("b.h5", "r") as f:
        np.testing.assert_allclose(f["counts"][()], 0.5)
        np.testing.assert_allclose(f["n_pix"][()], 5000)
        np.testing.assert_allclose(f["beta"][()], 0.15)
    (in_tmp / "c.json").write_text(json.dumps({"measurement": {"counts": [0, 1]}}))
    assert main(["simulate", "--n", "6", "--measurement", "fast", "--config", "c.json",
                 "--out", "c.h5"]) == 2


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_pseudo_experiments(in_tmp, capsys, mode):
    (in_tmp / "c.json").write_text(json.dumps({"experiment": {"n_frames": 24}}))
    assert main(["simulate", "--measurement", mode, "--groups", "2", "--temperatures",
                 "300,450", "--repeats", "2", "--n-pix", "2000", "--config", "c.json",
                 "--out", "pseudo.h5", "--seed", "4"]) == 0
    maps = read_maps("pseudo.h5")
    assert len(maps) == 8
    assert list(maps.group) == ["group-1"] * 4 + ["group-2"] * 4
    np.testing.assert_array_equal(maps.temperature, [300, 300, 450, 450] * 2)
    assert np.all(maps.theta[:4] == maps.theta[0]) and np.any(maps.theta[4] != maps.theta[0])
    assert Prior().contains(maps.theta).all()
    with h5py.File("pseudo.h5", "r") as f:
        assert f["C_half_a"].shape == (8, 24, 24)
        assert f.attrs["kind"] == "pseudo-experiments"
    capsys.readouterr()
    assert main(["phi", "pseudo.h5", "--csv", "phi.csv"]) == 0
    out = capsys.readouterr().out
    assert "Phi split-half" in out and "g2-T450-r2" in out
    rows = (in_tmp / "phi.csv").read_text().splitlines()
    assert len(rows) == 9


def test_pseudo_experiments_need_a_measurement(in_tmp, capsys):
    assert main(["simulate", "--groups", "2", "--out", "p.h5"]) == 2
    assert "--measurement" in capsys.readouterr().err


def test_phi_command_on_the_real_map(in_tmp, capsys):
    """The real photon-limited map: plain Phi near 1 from noise, the corrected one far lower."""
    from pathlib import Path

    real = Path(__file__).parent / "data" / "bnl_two_time_350.npy"
    assert main(["import", str(real), "--temperature", "300", "--q", "0.1",
                 "--frame-time", "1", "--frames", "350", "--out", "bnl.h5"]) == 0
    capsys.readouterr()
    assert main(["phi", "bnl.h5", "--csv", "phi.csv"]) == 0
    values = (in_tmp / "phi.csv").read_text().splitlines()[1].split(",")
    plain, corrected = float(values[3]), float(values[4])
    assert plain > 0.9
    assert corrected < 0.5
