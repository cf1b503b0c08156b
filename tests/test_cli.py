"""The command line: configuration, simulation and plots, and one-line errors on bad input."""

import json
import os
import signal
import subprocess
import sys
import time
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


# --- numeric flags, outputs, modes -------------------------------------------------------------

THETA = ["--theta", "D=1e-4,sigma=0.5,c=0.3", "--temperature", "400"]
GEOMETRY = ["--q-ring", "0.02", "0.03", "--center", "8", "8", "--pixel-size", "75",
            "--distance", "5", "--wavelength", "1", "--temperature", "300", "--frame-time", "1"]


def _with(flags: list[str], flag: str, value: str) -> list[str]:
    """``flags`` with the value of ``flag`` (or its first value) replaced by ``value``."""
    out = list(flags)
    out[out.index(flag) + 1] = value
    return out


NON_FINITE = [
    (["simulate", *_with(THETA, "--temperature", "inf"), "--out", "o.h5"], "--temperature"),
    (["simulate", "--theta", "D=1e-4,sigma=inf,c=0.3", "--temperature", "400", "--out", "o.h5"],
     "sigma"),
    (["simulate", "--theta", "D=nan,sigma=0.5,c=0.3", "--temperature", "400", "--out", "o.h5"],
     "D"),
    (["simulate", "--groups", "2", "--measurement", "fast", "--counts", "nan", "--out", "o.h5"],
     "--counts"),
    (["simulate", "--groups", "2", "--measurement", "fast", "--beta", "inf", "--out", "o.h5"],
     "--beta"),
    (["simulate", "--groups", "2", "--measurement", "fast", "--temperatures", "300,inf",
      "--out", "o.h5"], "--temperatures"),
    (["simulate", "--n", "inf", "--out", "o.h5"], "--n"),
    *[(["correlate", "f.npy", "--out", "o.h5", *_with(GEOMETRY, flag, value)], flag)
      for flag, value in (("--q-ring", "nan"), ("--center", "inf"), ("--pixel-size", "inf"),
                          ("--distance", "nan"), ("--wavelength", "nan"),
                          ("--temperature", "nan"), ("--frame-time", "inf"))],
    (["correlate", "f.npy", "--out", "o.h5", "--q-ring", "0.02", "inf"], "--q-ring"),
    *[(["import", "m.npy", "--out", "o.h5", "--temperature", "300", "--q", "0.1",
        "--frame-time", "1", flag, value], flag)
      for flag, value in (("--temperature", "inf"), ("--q", "nan"), ("--frame-time", "inf"),
                          ("--frames", "inf"))],
]


@pytest.mark.parametrize(("argv", "flag"), NON_FINITE, ids=[" ".join(a[:1] + [f]) + str(k)
                                                           for k, (a, f) in
                                                           enumerate(NON_FINITE)])
def test_non_finite_flag_values_are_refused_in_one_line(in_tmp, capsys, argv, flag):
    np.save("f.npy", np.ones((4, 16, 16), dtype=np.uint16))
    np.save("m.npy", np.ones((8, 8)))
    err = run_error(capsys, argv)
    assert flag in err and ("finite" in err or "number" in err), err
    assert not os.path.exists("o.h5")


def _bank(in_tmp) -> list[str]:
    (in_tmp / "c.json").write_text(json.dumps({"experiment": {"n_frames": 16}}))
    return ["--config", "c.json"]


def _frames_and_map(in_tmp) -> None:
    rng = np.random.default_rng(0)
    np.save(in_tmp / "f.npy", rng.poisson(2.0, (8, 16, 16)).astype(np.uint16))
    a = rng.random((8, 8))
    np.save(in_tmp / "m.npy", 1 + 0.1 * (a + a.T))


WRITERS = {
    "simulate --theta": lambda: ["simulate", *THETA, "--config", "c.json", "--out", "o.h5"],
    "simulate --theta measured": lambda: ["simulate", *THETA, "--config", "c.json",
                                          "--measurement", "fast", "--out", "o.h5"],
    "simulate --groups": lambda: ["simulate", "--groups", "1", "--repeats", "1",
                                  "--temperatures", "300", "--measurement", "fast",
                                  "--n-pix", "1000", "--config", "c.json", "--out", "o.h5"],
    "import": lambda: ["import", "m.npy", "--out", "o.h5", "--temperature", "300", "--q", "0.1",
                       "--frame-time", "1", "--no-resample"],
    "correlate": lambda: ["correlate", "f.npy", "--out", "o.h5", "--q-ring", "0", "1",
                          *GEOMETRY[3:]],
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writing_command_refuses_an_existing_output(in_tmp, capsys, writer):
    _bank(in_tmp)
    _frames_and_map(in_tmp)
    argv = WRITERS[writer]()
    Path("o.h5").write_text("precious")
    assert "--overwrite" in run_error(capsys, argv)
    assert Path("o.h5").read_text() == "precious"
    assert main([*argv, "--overwrite"]) == 0, capsys.readouterr().err
    with h5py.File("o.h5") as f:
        assert f.attrs["format"] == "gbsbi-maps"


def test_phi_csv_and_plot_refuse_existing_outputs(in_tmp, capsys):
    assert main(["simulate", "--n", "16", *_bank(in_tmp), "--out", "b.h5"]) == 0
    Path("phi.csv").write_text("precious")
    assert "--overwrite" in run_error(capsys, ["phi", "b.h5", "--csv", "phi.csv"])
    assert Path("phi.csv").read_text() == "precious"
    assert main(["phi", "b.h5", "--csv", "phi.csv", "--overwrite"]) == 0
    assert Path("phi.csv").read_text().startswith("scan,")
    capsys.readouterr()
    os.mkdir("figs")
    Path("figs/cuts.png").write_text("precious")
    assert "figs/cuts.png exists" in run_error(capsys, ["plot", "b.h5", "--out", "figs"])
    assert main(["plot", "b.h5", "--out", "figs", "--overwrite"]) == 0
    assert Path("figs/cuts.png").stat().st_size > 10_000


def test_phi_csv_into_a_missing_folder(in_tmp, capsys):
    assert main(["simulate", "--n", "8", *_bank(in_tmp), "--out", "b.h5"]) == 0
    err = run_error(capsys, ["phi", "b.h5", "--csv", "no/such/phi.csv"])
    assert "folder no/such does not exist" in err


def test_failed_plot_leaves_no_empty_folder(in_tmp, capsys):
    """A bank whose every Phi is NaN has no quartiles: one line, and the output folder that
    the run created is gone; a folder that existed before is left as it was."""
    assert main(["simulate", "--n", "8", *_bank(in_tmp), "--out", "b.h5"]) == 0
    with h5py.File("b.h5", "a") as f:
        f["phi"][...] = np.nan
    assert "finite Phi" in run_error(capsys, ["plot", "b.h5", "--out", "new/figs"])
    assert not os.path.exists("new")
    os.mkdir("old")
    Path("old/keep.txt").write_text("mine")
    run_error(capsys, ["plot", "b.h5", "--out", "old"])
    assert os.listdir("old") == ["keep.txt"]


def test_measured_maps_for_given_parameters(in_tmp, capsys):
    """--measurement and --counts, --n-pix, --beta are honoured with --theta."""
    argv = ["simulate", *THETA, *_bank(in_tmp), "--n", "3", "--measurement", "fast",
            "--counts", "0.5", "--n-pix", "5000", "--beta", "0.25", "--out", "m.h5"]
    assert main(argv) == 0
    with h5py.File("m.h5") as f:
        config = json.loads(f.attrs["config"])
        assert config["measurement"]["counts"] == 0.5 and config["measurement"]["beta"] == 0.25
        assert f["C_half_a"].shape == (3, 16, 16)
        C = f["C"][()]
        assert np.all(f["phi"][()] > f["phi_noiseless"][()])  # photon noise is not TTI
    # contrast 0.25: the noiseless diagonal excess; the measured diagonal adds 1 / counts
    np.testing.assert_allclose(np.nanmean(np.diagonal(C, axis1=1, axis2=2)), 1 + 0.25 + 2,
                               rtol=0.05)
    assert main(["simulate", *THETA, *_bank(in_tmp), "--out", "clean.h5"]) == 0
    with h5py.File("clean.h5") as f:
        assert "C_half_a" not in f and json.loads(f.attrs["config"]).get("measurement") is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--counts", "0.1"], "--counts set the measurement of --theta maps"),
     (["--measurement", "fast", "--workers", "2"], "--workers cannot be used with --theta"),
     (["--resume"], "--resume cannot be used with --theta"),
     (["--groups", "2"], "two modes")],
)
def test_flags_that_theta_would_ignore_are_refused(in_tmp, capsys, extra, message):
    assert message in run_error(capsys, ["simulate", *THETA, *extra, "--out", "o.h5"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--counts", "0.1"], "--counts cannot be used with a bank"),
     (["--measurement", "exact", "--beta", "0.2"], "--beta cannot be used with a bank"),
     (["--temperatures", "300"], "--temperatures cannot be used with a bank"),
     (["--temperature", "300"], "--temperature cannot be used with a bank")],
)
def test_flags_that_a_bank_would_ignore_are_refused(in_tmp, capsys, extra, message):
    err = run_error(capsys, ["simulate", "--n", "4", *extra, "--out", "o.h5"])
    assert message in err and "measurement' ranges" in err


def test_flags_that_pseudo_experiments_would_ignore_are_refused(in_tmp, capsys):
    err = run_error(capsys, ["simulate", "--groups", "2", "--measurement", "fast", "--n", "5",
                             "--out", "o.h5"])
    assert "--n cannot be used with --groups" in err


def test_unreachable_scheduler_leaves_nothing_behind(tmp_path, monkeypatch):
    """A scheduler that does not answer: an error naming it, and no OUT.parts/ (the run made
    nothing to resume)."""
    pytest.importorskip("distributed")
    from gbsbi import bank
    from gbsbi.errors import GbsbiError

    monkeypatch.setattr(bank, "CONNECT_TIMEOUT", "1s")
    spec = BankSpec(ExperimentConfig(n_frames=16), Prior(), 8, 0, 4)
    with pytest.raises(GbsbiError, match="tcp://127.0.0.1:9"):
        bank.simulate_bank(tmp_path / "b.h5", spec, scheduler="tcp://127.0.0.1:9")
    assert list(tmp_path.iterdir()) == []


# --- start-up: fast, quiet on Ctrl-C -----------------------------------------------------------


def test_building_the_parser_imports_no_heavy_module():
    """`gbsbi --help` must start at once: building the parser (every command's register())
    imports neither matplotlib, scipy, torch, dask nor h5py; they load when a command runs."""
    code = ("import sys; from gbsbi.cli import build_parser; build_parser(); "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert not loaded & {"matplotlib", "scipy", "torch", "dask", "distributed", "h5py", "sbi"}


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _interrupt(argv: list[str], ready, cwd: Path) -> subprocess.CompletedProcess:
    """Start ``python -m gbsbi argv`` in its own process group, wait until ``ready(pid)``,
    then send SIGINT to the whole group as a terminal's Ctrl-C does."""
    proc = subprocess.Popen([sys.executable, "-m", "gbsbi", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _importing_numpy(pid: int) -> bool:
    """The process has started loading numpy (its shared objects are mapped): mid start-up."""
    try:
        return "numpy" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_ctrl_c_during_start_up_is_one_line_and_130(tmp_path):
    done = _interrupt(["simulate", "--n", "100000", "--out", "b.h5"], _importing_numpy,
                      tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "interrupted" in done.stderr


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_ctrl_c_while_workers_start_is_one_line_and_130(tmp_path):
    """Ctrl-C reaches every process of the group; the workers, caught while they import, must
    not each print a traceback."""

    def workers_importing(pid: int) -> bool:
        return any(_importing_numpy(child) for child in _children(pid))

    done = _interrupt(["simulate", "--n", "100000", "--workers", "2", "--out", "b.h5"],
                      workers_importing, tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "b.h5.parts").exists()  # no block was finished: nothing kept


def test_help_texts_quote_the_budgets_and_grid_in_force():
    """The help of correlate and import writes the correlator's budgets and the model's frames
    as numbers, so that building the parser needs no numpy: they must be the ones in force."""
    from gbsbi.cli import correlate, importer
    from gbsbi.correlator import BAND_BYTES
    from gbsbi.correlator.store import STORE_BYTES

    assert correlate.BAND_MIB * 2**20 == BAND_BYTES
    assert correlate.STORE_MIB * 2**20 == STORE_BYTES
    assert importer.MODEL_FRAMES == ExperimentConfig().n_frames
