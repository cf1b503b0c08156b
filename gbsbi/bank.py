"""Simulation banks: many simulated maps with their parameters, made reproducibly and resumably.

A bank is a maps file (:mod:`gbsbi.io.mapsfile`, docs/maps-file.md) with the true ``theta`` of
every map, plus ``phi`` (n,) and root attributes ``config`` (canonical JSON of the experiment
configuration, the prior, the seed, the number of maps and the block size), ``config_hash`` (its
SHA-256) and ``content_hash`` (SHA-256 of theta, temperature and the maps, in order).

Why HDF5 with a journal: HDF5 is what beamline software reads (h5py, silx, HDFView), and its
chunked datasets let readers take one block of maps at a time. HDF5 is not safe against a kill
in the middle of a write (the whole file can become unreadable), so a run first journals every
finished block as its own small ``.npz`` file in ``OUT.parts/`` (written under a temporary name,
synced to disk and renamed, so a block is either complete or absent, even after a power loss),
then assembles the chunked HDF5 file, again under a temporary name. ``--resume`` checks every
journaled block and simulates a damaged one again; the journal's manifest records the gbsbi
version, and a journal from another version is refused rather than mixed with new blocks. A
run killed at any moment loses at most the blocks in flight; ``--resume`` simulates only the
missing blocks. Every block draws from its own random stream,
``SeedSequence(seed, spawn_key=(block,))``, so the bank's bytes depend on the seed and the block
size only, not on interruptions, the number of workers or the scheduler.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gbsbi import __version__
from gbsbi.errors import GbsbiError
from gbsbi.io.atomic import atomic_path, check_writable, write_atomic
from gbsbi.io.mapsfile import FORMAT, VERSION
from gbsbi.summaries.phi import phi
from gbsbi.workers import ctrl_c_held, ignore_ctrl_c
from simulators.config import ExperimentConfig, MeasurementPrior, Prior, SamplePrior, config_hash
from simulators.measured import MODES, measured_maps
from simulators.polycrystal import noiseless_maps

#: Maps per HDF5 chunk of ``C`` (16 maps of 128 x 128 float32 = 1 MiB).
CHUNK_MAPS = 16


@dataclass(frozen=True)
class BankSpec:
    """Everything that determines a bank's content.

    Attributes:
        config: the experiment configuration.
        prior: the prior the parameters are drawn from.
        n: number of maps.
        seed: root seed of the random streams.
        block_size: maps per block (the unit of work, of journaling and of random streams).
        measurement: ``none`` (noiseless maps), ``fast`` (fast noise model) or ``exact``
            (photon-counting speckle pixels).
        nuisance: ranges of the measurement nuisances (counts, N_pix, beta, drift, dropped
            frames) when measured.
        sample: ranges of the sample nuisances (boundaries and the spread of their lengths).
    """

    config: ExperimentConfig
    prior: Prior
    n: int
    seed: int
    block_size: int = 256
    measurement: str = "none"
    nuisance: MeasurementPrior = MeasurementPrior()
    sample: SamplePrior = SamplePrior()

    def __post_init__(self) -> None:
        if self.n < 1:
            raise GbsbiError(f"--n must be at least 1, got {self.n}")
        if self.seed < 0:
            raise GbsbiError(f"--seed must be non-negative, got {self.seed}")
        if self.block_size < 1:
            raise GbsbiError(f"--block-size must be at least 1, got {self.block_size}")
        if self.measurement not in MODES:
            raise GbsbiError(f"--measurement must be one of {', '.join(MODES)}")

    @property
    def n_blocks(self) -> int:
        return -(-self.n // self.block_size)

    def block_range(self, block: int) -> tuple[int, int]:
        start = block * self.block_size
        return start, min(start + self.block_size, self.n)

    def to_json(self) -> str:
        data = {
            "experiment": self.config.to_dict(),
            "prior": self.prior.to_dict(),
            "n": self.n,
            "seed": self.seed,
            "block_size": self.block_size,
            "measurement": self.measurement,
        }
        if self.measurement != "none":
            data["nuisance"] = self.nuisance.to_dict()
        data["sample"] = self.sample.to_dict()
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def block_rng(seed: int, block: int) -> np.random.Generator:
    """The independent random stream of one block."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(block,))))


def simulate_block(spec: BankSpec, block: int) -> dict[str, np.ndarray]:
    """Simulate one block of a bank (a pure function of the spec and the block index).

    It runs with one BLAS thread wherever it runs (serially, in a local pool or on a Dask
    worker): the thread count changes the summation order of float32 products and so the
    bytes, and one thread also avoids OpenBLAS's many-fold slowdown when other processes
    compete for the cores (on an idle machine it is about 12% slower).

    Returns:
        ``theta`` (m, 3), ``temperature`` (m,), ``C`` (m, T, T) float32 and ``phi`` (m,), and
        the sample nuisances ``boundaries``, ``length_spread`` (m,), ``boundary_lengths`` (m,
        K_max, relative to L), ``boundary_tilt`` (m, K_max, cos phi), ``static``,
        ``stretch``, ``rate_drift``, ``wander``, ``event_count`` and ``event_fraction`` (m,)
        unless every map has the single boundary (all but the first three only where they
        vary), and ``age`` (m,) where the prior draws ages.
        Measured banks add the nuisances ``counts``, ``n_pix``, ``beta``, ``drift``,
        ``dropped`` (m,), and beside the plain ``phi`` of the measured map ``phi_noiseless``,
        ``phi_split_half`` and ``phi_corrected`` (noise-corrected from the map alone).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _simulate_block(spec, block)


def _simulate_block(spec: BankSpec, block: int) -> dict[str, np.ndarray]:
    start, stop = spec.block_range(block)
    rng = block_rng(spec.seed, block)
    theta, temperature = spec.prior.sample(stop - start, rng)
    if spec.measurement == "none":
        sample = _with_age(spec.sample.sample(stop - start, rng), spec.prior, rng)
        maps = noiseless_maps(theta, temperature, spec.config, sample, rng)
        return {"theta": theta, "temperature": temperature, "C": maps, "phi": phi(maps),
                **_stored(sample, spec.sample)}
    from gbsbi.summaries.phi_noise import phi_and_corrected

    nuisance = spec.nuisance.sample(stop - start, rng)
    sample = _with_age(spec.sample.sample(stop - start, rng), spec.prior, rng)
    out = measured_maps(theta, temperature, spec.config, {**nuisance, **sample},
                        spec.measurement, spec.nuisance, rng, halves=spec.measurement == "exact")
    extra = {"phi_split_half": phi(out["C_a"], out["C_b"])} if "C_a" in out else {}
    plain, corrected = phi_and_corrected(out["C"])
    return {
        "theta": theta, "temperature": temperature, "C": out["C"], "phi": plain,
        "phi_noiseless": phi(out["C_noiseless"]), "phi_corrected": corrected,
        **extra, **nuisance, **_stored(sample, spec.sample),
    }


def _with_age(sample: dict[str, np.ndarray], prior: Prior,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The sample nuisances with each window's age, where the prior draws ages."""
    age = prior.sample_age(len(sample["boundaries"]), rng)
    return sample if age is None else {**sample, "age": age}


def _stored(sample: dict[str, np.ndarray], prior: SamplePrior) -> dict[str, np.ndarray]:
    """The sample nuisances a bank keeps (none for the single boundary, as banks made
    before polycrystals) and the windows' ages where they vary."""
    aged = {"age": sample["age"]} if "age" in sample else {}
    if prior.single:
        return aged
    kept = {"boundaries": sample["boundaries"], "length_spread": sample["length_spread"],
            "boundary_lengths": sample["lengths"]}
    if "tilt" in sample:
        kept["boundary_tilt"] = sample["tilt"]
    for key in ("static", "stretch", "rate_drift", "wander", "event_count", "event_fraction"):
        if key in sample:
            kept[key] = sample[key]
    return kept | aged


#: Errors of reading a damaged .npz file.
_DAMAGED = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class Journal:
    """The folder ``OUT.parts/`` of finished blocks of an unfinished bank."""

    def __init__(self, out: Path, spec: BankSpec) -> None:
        self.folder = out.with_name(out.name + ".parts")
        self.spec = spec
        self.manifest = self.folder / "manifest.json"

    def open(self, resume: bool, note: Callable[[str], None] | None = None) -> None:
        """Create the journal, or check that an existing one belongs to the same spec and the
        same gbsbi version, and take out its damaged blocks (each reported to ``note``)."""
        text = self.spec.to_json()
        if self.folder.exists():
            if not resume:
                raise GbsbiError(
                    f"an interrupted run left {self.folder}; continue it with --resume "
                    "or delete that folder"
                )
            try:
                manifest = json.loads(self.manifest.read_text())
                found = manifest["config_hash"]
            except (OSError, ValueError, KeyError, TypeError):
                raise GbsbiError(f"{self.manifest} is missing or unreadable") from None
            if found != config_hash(text):
                raise GbsbiError(
                    f"--resume: {self.folder} was made with another configuration "
                    f"(hash {str(found)[:12]}, now {config_hash(text)[:12]}); use the same "
                    "configuration, seed, --n and --block-size, or delete that folder"
                )
            version = manifest.get("gbsbi_version")
            if version != __version__:
                made = f"gbsbi {version}" if version else "a gbsbi that did not record its version"
                raise GbsbiError(
                    f"--resume: {self.folder} was made by {made}, this is gbsbi "
                    f"{__version__}; blocks of two versions are never mixed: finish the run "
                    "with that version or delete that folder"
                )
            for block in sorted(self.done()):
                why = self.check(block)
                if why:
                    self.path(block).unlink()
                    if note is not None:
                        note(f"{self.path(block)} is damaged ({why}); it is simulated again")
            return
        self.folder.mkdir()
        manifest = {"config": json.loads(text), "config_hash": config_hash(text),
                    "gbsbi_version": __version__}
        write_atomic(self.manifest, json.dumps(manifest, indent=1), sync=True)

    def path(self, block: int) -> Path:
        return self.folder / f"block_{block:07d}.npz"

    def done(self) -> set[int]:
        return {b for b in range(self.spec.n_blocks) if self.path(b).exists()}

    def save(self, block: int, arrays: dict[str, np.ndarray]) -> None:
        """Journal one block: written under a temporary name, synced, then renamed."""
        with atomic_path(self.path(block), sync=True) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def load(self, block: int) -> dict[str, np.ndarray]:
        """The arrays of a journaled block (every byte read, so the zip's CRCs are checked)."""
        with np.load(self.path(block)) as data:
            return {key: data[key] for key in data.files}

    def check(self, block: int) -> str:
        """Why a journaled block is damaged ('' when it is whole): unreadable, or arrays
        missing or of the wrong shape."""
        try:
            arrays = self.load(block)
        except _DAMAGED as err:
            return f"{type(err).__name__}: {err}"
        start, stop = self.spec.block_range(block)
        m, T = stop - start, self.spec.config.n_frames
        expected = {"theta": (m, 3), "temperature": (m,), "C": (m, T, T), "phi": (m,)}
        for key, shape in expected.items():
            if key not in arrays:
                return f"no array {key!r}"
            if arrays[key].shape != shape:
                return f"{key} has shape {arrays[key].shape}, expected {shape}"
        return ""

    def remove(self) -> None:
        shutil.rmtree(self.folder)


def assemble(out: Path, spec: BankSpec, journal: Journal) -> str:
    """Write the bank's HDF5 file from the journal, one block in memory at a time.

    Returns:
        The content hash (SHA-256 of theta, temperature and C, in order).
    """
    import h5py

    T = spec.config.n_frames
    digest = hashlib.sha256()
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        text = spec.to_json()
        f.attrs.update(
            format=FORMAT, version=VERSION, kind="bank", config=text,
            config_hash=config_hash(text), seed=spec.seed, gbsbi_version=__version__,
        )
        f["t"] = spec.config.t
        f["q"] = np.full(spec.n, spec.config.q)
        datasets = {}
        for block in range(spec.n_blocks):
            start, stop = spec.block_range(block)
            try:
                data = journal.load(block)
            except _DAMAGED as err:
                raise GbsbiError(f"{journal.path(block)} is damaged ({type(err).__name__}: "
                                 f"{err}); run the same command with --resume to simulate it "
                                 "again") from None
            for key, value in data.items():
                if key not in datasets:
                    chunks = (min(CHUNK_MAPS, spec.n), T, T) if key == "C" else None
                    datasets[key] = f.create_dataset(
                        key, (spec.n, *value.shape[1:]), dtype=value.dtype, chunks=chunks
                    )
                datasets[key][start:stop] = value
            for key in ("theta", "temperature", "C"):
                digest.update(np.ascontiguousarray(data[key]).tobytes())
        f.attrs["content_hash"] = digest.hexdigest()
    return digest.hexdigest()


def _run_local(spec: BankSpec, todo: list[int], workers: int) -> Iterator[tuple[int, dict]]:
    if workers <= 1:
        for block in todo:
            yield block, simulate_block(spec, block)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=ignore_ctrl_c) as pool:
        with ctrl_c_held():  # the workers start inside the first submits
            pending = {pool.submit(simulate_block, spec, b): b for b in todo[: 2 * workers]}
        queue = todo[2 * workers :]
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    block = pending.pop(future)
                    if queue:
                        nxt = queue.pop(0)
                        pending[pool.submit(simulate_block, spec, nxt)] = nxt
                    yield block, future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise


#: How long to wait for a Dask scheduler.
CONNECT_TIMEOUT = "10s"


def _connect(address: str) -> object:
    """A Dask client of the scheduler at ``address``, or an error naming it."""
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise GbsbiError(f"--scheduler {address}: cannot connect ({err})") from None


def _run_dask(spec: BankSpec, todo: list[int], client: object) -> Iterator[tuple[int, dict]]:
    from distributed import as_completed

    futures = client.map(simulate_block, [spec] * len(todo), todo, pure=False)
    index = {future.key: block for future, block in zip(futures, todo, strict=True)}
    for future in as_completed(futures):
        yield index[future.key], future.result()
        future.release()


def _finished(out: Path, spec: BankSpec) -> str:
    """The content hash of a bank that is already complete; an error if it is another one."""
    import h5py

    try:
        with h5py.File(out, "r") as f:
            found, content = f.attrs.get("config_hash"), f.attrs.get("content_hash")
    except OSError:
        raise GbsbiError(f"--resume: {out} exists but is not a readable bank") from None
    if found != config_hash(spec.to_json()):
        raise GbsbiError(
            f"--resume: {out} is a finished bank made with another configuration; "
            "pass --overwrite to replace it"
        )
    return str(content)


def simulate_bank(
    out: str | os.PathLike,
    spec: BankSpec,
    *,
    resume: bool = False,
    overwrite: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> str:
    """Simulate a bank into ``out``, journaling finished blocks so that a killed run resumes.

    A run that fails before any block is finished removes the journal it created; finished
    blocks are kept for ``resume``.

    Args:
        out: the HDF5 file to write.
        spec: what to simulate.
        resume: continue an interrupted run (its journal must belong to the same spec and
            gbsbi version; damaged blocks are simulated again).
        overwrite: replace an existing ``out``.
        workers: local worker processes (ignored with ``scheduler``).
        scheduler: address of a Dask distributed scheduler, e.g. ``tcp://10.0.0.1:8786``;
            its workers should be processes with one thread each (``dask worker --nthreads
            1``), since the one-BLAS-thread limit of a block is per process.
        progress: called with the number of maps finished, after each block (and once at the
            start with the number already journaled).
        note: called with a line for each damaged block found on resume.

    Returns:
        The bank's content hash.
    """
    out = check_writable(out)
    if out.exists() and not overwrite and not resume:
        raise GbsbiError(f"{out} exists; pass --overwrite to replace it")
    if workers < 1:
        raise GbsbiError(f"--workers must be at least 1, got {workers}")
    journal = Journal(out, spec)
    if resume and out.exists() and not journal.folder.exists():
        return _finished(out, spec)
    client = _connect(scheduler) if scheduler else None  # before anything is created
    created = not journal.folder.exists()
    try:
        journal.open(resume, note)
        done = journal.done()
        todo = [b for b in range(spec.n_blocks) if b not in done]
        if progress is not None:
            progress(sum(stop - start for start, stop in map(spec.block_range, done)))
        runner = _run_dask(spec, todo, client) if client else _run_local(spec, todo, workers)
        for block, arrays in runner:
            journal.save(block, arrays)
            if progress is not None:
                start, stop = spec.block_range(block)
                progress(stop - start)
        content = assemble(out, spec, journal)
    except BaseException:
        if created and journal.folder.exists() and not journal.done():
            journal.remove()  # nothing to resume: leave nothing behind
        raise
    finally:
        if client is not None:
            client.close()
    journal.remove()
    return content
