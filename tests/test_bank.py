"""Simulation banks: reproducible bytes, resumable after interruption, parallel-invariant."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import gbsbi
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
    _interrupted_run(tmp_path / "cut.h5", spec)
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


def _interrupted_run(path, spec) -> None:
    """A run stopped by Ctrl-C after its third block: three blocks journaled."""
    calls = []

    def progress(k: int) -> None:
        calls.append(k)
        if len(calls) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate_bank(path, spec, progress=progress)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shape"])
def test_a_damaged_block_is_found_on_resume_and_simulated_again(tmp_path, damage):
    """A journaled block that cannot be read (or holds the wrong arrays) is reported and
    simulated again on --resume, not raised as a bare BadZipFile; the bank is the
    uninterrupted one."""
    spec = BankSpec(SMALL, Prior(), n=64, seed=3, block_size=16)
    simulate_bank(tmp_path / "full.h5", spec)
    _interrupted_run(tmp_path / "cut.h5", spec)
    block = tmp_path / "cut.h5.parts" / "block_0000001.npz"
    if damage == "truncated":
        block.write_bytes(block.read_bytes()[:1000])
    elif damage == "garbage":
        data = bytearray(block.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # the zip's CRC catches it
        block.write_bytes(bytes(data))
    else:
        np.savez(block, theta=np.zeros((16, 3)), temperature=np.zeros(16),
                 C=np.zeros((16, 8, 8)), phi=np.zeros(16))
    notes = []
    simulate_bank(tmp_path / "cut.h5", spec, resume=True, note=notes.append)
    assert len(notes) == 1 and "block_0000001.npz is damaged" in notes[0]
    assert_same_bank(tmp_path / "full.h5", tmp_path / "cut.h5")


def test_the_journal_records_the_version_and_refuses_another(tmp_path):
    spec = BankSpec(SMALL, Prior(), n=64, seed=3, block_size=16)
    _interrupted_run(tmp_path / "b.h5", spec)
    manifest = tmp_path / "b.h5.parts" / "manifest.json"
    data = json.loads(manifest.read_text())
    assert data["gbsbi_version"] == gbsbi.__version__
    data["gbsbi_version"] = "0.0.1"
    manifest.write_text(json.dumps(data))
    with pytest.raises(GbsbiError, match="made by gbsbi 0.0.1, this is gbsbi"):
        simulate_bank(tmp_path / "b.h5", spec, resume=True)
    del data["gbsbi_version"]  # a journal written before versions were recorded
    manifest.write_text(json.dumps(data))
    with pytest.raises(GbsbiError, match="did not record its version"):
        simulate_bank(tmp_path / "b.h5", spec, resume=True)
    assert len(list((tmp_path / "b.h5.parts").glob("block_*.npz"))) == 3  # nothing deleted
    with h5py.File(simulate_bank(tmp_path / "c.h5", spec) and tmp_path / "c.h5") as f:
        assert f.attrs["gbsbi_version"] == gbsbi.__version__


def test_blocks_reach_the_disk_before_they_are_renamed(tmp_path, monkeypatch):
    """Each block (and the manifest) is fsynced under its temporary name, then renamed, then
    its folder is synced: after a power loss a block is whole or absent."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    spec = BankSpec(SMALL, Prior(), n=32, seed=3, block_size=16)
    simulate_bank(tmp_path / "b.h5", spec)
    renamed = [path for kind, path in events if kind == "replace" and ".block_" in path]
    assert len(renamed) == 2
    for path in renamed:
        at = events.index(("replace", path))
        assert ("fsync", path) in events[:at]  # its bytes first
        assert events[at + 1] == ("fsync", str(tmp_path / "b.h5.parts"))  # then the folder
