"""The command line: configuration, simulation and plots, and one-line errors on bad input."""

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from gbsbi.bank import BankSpec, Journal
from gbsbi.cli import main
from simulators.config import ExperimentConfig, Prior


def run_error(capsys, argv: list[str]) -> str:
    """Run a command that must fail as a user error; return its one stderr line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_config_json_lists_every_constant(capsys):
    assert main(["config", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["experiment"] == ExperimentConfig().to_dict()
    assert [p["name"] for p in data["prior"]["parameters"]] == ["D", "sigma", "c"]
    assert {p["scale"] for p in data["prior"]["parameters"]} == {"linear", "log"}
    assert data["prior"]["temperature"] == [300.0, 500.0]


def test_config_json_round_trips_through_config_flag(in_tmp, capsys):
    """What `gbsbi config --json` prints is a valid --config input, edits included."""
    assert main(["config", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    data["experiment"]["beta"] = 0.25
    (in_tmp / "c.json").write_text(json.dumps(data))
    assert main(["config", "--json", "--config", "c.json"]) == 0
    assert json.loads(capsys.readouterr().out)["experiment"]["beta"] == 0.25


@pytest.mark.parametrize(
    ("theta", "message"),
    [("D=-1,sigma=0.3,c=0.2", "D must be >= 0"),
     ("D=1e-4,sigma=-0.3,c=0.2", "sigma must be > 0"),
     ("D=1e-4,sigma=0.3,c=1.5", "c must lie in [0, 1]"),
     ("D=1e-4,sigma=0.3,c=-0.1", "c must lie in [0, 1]"),
     ("D=1e-4,sigma=0.3", "missing c"),
     ("D=1e-4,sigma=0.3,c=0.1,x=2", "expected D=..,sigma=..,c=.."),
     ("D=abc,sigma=0.3,c=0.1", "is not a number")],
)
def test_bad_theta(in_tmp, capsys, theta, message):
    err = run_error(capsys, ["simulate", "--theta", theta, "--temperature", "400",
                             "--out", "one.h5"])
    assert message in err
    assert not os.path.exists("one.h5")


def test_simulate_given_theta_writes_a_maps_file(in_tmp):
    assert main(["simulate", "--theta", "D=1e-4,sigma=0.5,c=0.3", "--temperature", "410",
                 "--out", "one.h5", "--n", "2"]) == 0
    with h5py.File("one.h5", "r") as f:
        assert f.attrs["format"] == "gbsbi-maps"
        assert f["C"].shape == (2, 128, 128)
        np.testing.assert_allclose(f["theta"][()], [[1e-4, 0.5, 0.3]] * 2)
        np.testing.assert_allclose(f["temperature"][()], [410, 410])
        assert "config_hash" in f.attrs


def test_unknown_configuration_keys(in_tmp, capsys):
    (in_tmp / "c.json").write_text(json.dumps({"experiment": {"qq": 1.0}}))
    err = run_error(capsys, ["simulate", "--n", "4", "--config", "c.json", "--out", "b.h5"])
    assert "unknown experiment configuration key(s) qq" in err and "c.json" in err
    (in_tmp / "c.json").write_text(json.dumps({"experimnt": {}}))
    assert "experimnt" in run_error(capsys, ["config", "--config", "c.json"])
    (in_tmp / "c.json").write_text(json.dumps({"experiment": {"q": -1}}))
    assert "q must be positive" in run_error(capsys, ["config", "--config", "c.json"])


def test_unwritable_output_path(in_tmp, capsys):
    err = run_error(capsys, ["simulate", "--n", "4", "--out", "no/such/folder/b.h5"])
    assert "no/such/folder" in err
    os.mkdir("locked")
    os.chmod("locked", 0o500)
    if os.access("locked", os.W_OK):  # root ignores permission bits
        err = run_error(capsys, ["simulate", "--n", "4", "--out", "locked"])
        assert "is a directory" in err
    else:
        err = run_error(capsys, ["simulate", "--n", "4", "--out", "locked/b.h5"])
        assert "permission denied" in err


def test_resume_with_another_configuration(in_tmp, capsys):
    (in_tmp / "a.json").write_text(json.dumps({"experiment": {"n_frames": 16}}))
    (in_tmp / "b.json").write_text(json.dumps({"experiment": {"n_frames": 16, "beta": 0.3}}))
    # the journal an interrupted run made with a.json leaves behind
    spec = BankSpec(ExperimentConfig(n_frames=16), Prior(), 8, 0, 4)
    Journal(Path("b.h5"), spec).open(resume=False)
    common = ["simulate", "--n", "8", "--block-size", "4", "--out", "b.h5", "--resume"]
    assert "another configuration" in run_error(capsys, [*common, "--config", "b.json"])
    assert main([*common, "--config", "a.json"]) == 0


def test_existing_output_needs_overwrite(in_tmp, capsys):
    args = ["simulate", "--n", "4", "--out", "b.h5", "--config", "c.json"]
    (in_tmp / "c.json").write_text(json.dumps({"experiment": {"n_frames": 16}}))
    assert main(args) == 0
    assert "--overwrite" in run_error(capsys, args)
    assert main([*args, "--overwrite"]) == 0


def test_plot_writes_the_three_figures(in_tmp, capsys):
    (in_tmp / "c.json").write_text(json.dumps({"experiment": {"n_frames": 32}}))
    assert main(["simulate", "--n", "64", "--config", "c.json", "--out", "b.h5"]) == 0
    assert main(["plot", "b.h5", "--out", "figs"]) == 0
    for name in ("quartile_maps.png", "phi_pairs.png", "cuts.png"):
        assert (in_tmp / "figs" / name).stat().st_size > 10_000
    err = run_error(capsys, ["plot", "missing.h5", "--out", "figs"])
    assert "missing.h5" in err


def test_bad_flag_values(in_tmp, capsys):
    assert "--n must be at least 1" in run_error(capsys, ["simulate", "--n", "0",
                                                          "--out", "b.h5"])
    assert "--workers" in run_error(capsys, ["simulate", "--n", "4", "--workers", "0",
                                             "--out", "b.h5"])
    assert "--temperature" in run_error(capsys, ["simulate", "--theta",
                                                 "D=0,sigma=1,c=0.1", "--out", "b.h5"])
