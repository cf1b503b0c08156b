"""Simulation banks: reproducible bytes, resumable after interruption, parallel-invariant."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from gbsbi.bank import BankSpec, simulate_bank
from gbsbi.errors import GbsbiError
from gbsbi.io.mapsfile import read_maps
from simulators.config import ExperimentConfig, Prior

SMALL = ExperimentConfig(n_frames=32)


def bank_arrays(path) -> dict:
    with h5py.File(path, "r") as f:
        data = {key: f[key][()] for key in ("C", "theta", "temperature", "phi", "t", "q")}
        data["content_hash"] = f.attrs["content_hash"]
        data["config_hash"] = f.attrs["config_hash"]
    return data


def assert_same_bank(a, b) -> None:
    da, db = bank_arrays(a), bank_arrays(b)
    for key in da:
        assert np.array_equal(da[key], db[key]), key


def test_same_seed_same_bytes(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=50, seed=3, block_size=16)
    h1 = simulate_bank(tmp_path / "a.h5", spec)
    h2 = simulate_bank(tmp_path / "b.h5", spec)
    assert h1 == h2
    assert_same_bank(tmp_path / "a.h5", tmp_path / "b.h5")
    other = BankSpec(SMALL, Prior(), n=50, seed=4, block_size=16)
    assert simulate_bank(tmp_path / "c.h5", other) != h1


def test_bank_is_a_maps_file_with_configuration(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=20, seed=0, block_size=8)
    simulate_bank(tmp_path / "bank.h5", spec)
    maps = read_maps(tmp_path / "bank.h5")
    assert maps.C.shape == (20, 32, 32)
    assert Prior().contains(maps.theta).all()
    with h5py.File(tmp_path / "bank.h5", "r") as f:
        assert f.attrs["config"] == spec.to_json()
        assert f["C"].chunks[0] <= 16  # readers can take a few maps at a time
    assert not (tmp_path / "bank.h5.parts").exists()


def test_interrupted_run_resumes_to_the_same_bank(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=100, seed=1, block_size=16)
    simulate_bank(tmp_path / "full.h5", spec)
    seen = []

    def stop_after_three_blocks(k: int) -> None:
        seen.append(k)
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate_bank(tmp_path / "cut.h5", spec, progress=stop_after_three_blocks)
    assert not (tmp_path / "cut.h5").exists()
    assert len(list((tmp_path / "cut.h5.parts").glob("block_*.npz"))) == 3
    with pytest.raises(GbsbiError, match="--resume"):
        simulate_bank(tmp_path / "cut.h5", spec)
    simulate_bank(tmp_path / "cut.h5", spec, resume=True)
    assert_same_bank(tmp_path / "full.h5", tmp_path / "cut.h5")


def test_kill_9_then_resume_gives_the_same_bank(tmp_path):
    """A real SIGKILL in the middle of a run: resuming gives the uninterrupted bank's bytes."""
    config = tmp_path / "config.json"
    config.write_text('{"experiment": {"n_frames": 48}}')
    cmd = [sys.executable, "-m", "gbsbi", "simulate", "--n", "3000", "--block-size", "8",
           "--seed", "5", "--config", str(config)]
    subprocess.run([*cmd, "--out", str(tmp_path / "full.h5")], check=True, capture_output=True)
    parts = tmp_path / "cut.h5.parts"
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "cut.h5")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.exists() and len(list(parts.glob("block_*.npz"))) >= 5:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    if proc.returncode == 0:
        pytest.fail("the run finished before it could be killed; make it longer")
    assert not (tmp_path / "cut.h5").exists()
    resumed = subprocess.run([*cmd, "--out", str(tmp_path / "cut.h5"), "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_bank(tmp_path / "full.h5", tmp_path / "cut.h5")


def test_resume_with_another_configuration_is_refused(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=40, seed=1, block_size=8)
    with pytest.raises(KeyboardInterrupt):
        simulate_bank(tmp_path / "b.h5", spec, progress=_interrupt_on_second_call())
    changed = BankSpec(ExperimentConfig(n_frames=32, q=2.0), Prior(), n=40, seed=1, block_size=8)
    with pytest.raises(GbsbiError, match="another configuration"):
        simulate_bank(tmp_path / "b.h5", changed, resume=True)


def _interrupt_on_second_call():
    calls = []

    def progress(k: int) -> None:
        calls.append(k)
        if len(calls) == 2:
            raise KeyboardInterrupt

    return progress


def test_local_workers_give_the_serial_bank(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=60, seed=2, block_size=8)
    simulate_bank(tmp_path / "serial.h5", spec)
    simulate_bank(tmp_path / "pool.h5", spec, workers=2)
    assert_same_bank(tmp_path / "serial.h5", tmp_path / "pool.h5")


def test_dask_local_cluster_gives_the_serial_bank(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = BankSpec(SMALL, Prior(), n=60, seed=2, block_size=8)
    simulate_bank(tmp_path / "serial.h5", spec)
    # Worker processes, as `dask worker` runs them: BLAS thread limits are per process.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        simulate_bank(tmp_path / "dask.h5", spec, scheduler=cluster.scheduler_address)
    assert_same_bank(tmp_path / "serial.h5", tmp_path / "dask.h5")


def test_resume_of_a_finished_bank_does_nothing(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=20, seed=1, block_size=8)
    content = simulate_bank(tmp_path / "b.h5", spec)
    mtime = (tmp_path / "b.h5").stat().st_mtime_ns
    assert simulate_bank(tmp_path / "b.h5", spec, resume=True) == content
    assert (tmp_path / "b.h5").stat().st_mtime_ns == mtime
    other = BankSpec(SMALL, Prior(), n=20, seed=2, block_size=8)
    with pytest.raises(GbsbiError, match="another configuration"):
        simulate_bank(tmp_path / "b.h5", other, resume=True)
