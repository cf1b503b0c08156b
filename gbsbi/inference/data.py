"""From files to network inputs: simulation banks (streamed) and experimental maps files.

A bank is read a chunk of maps at a time and reduced at once (:mod:`gbsbi.inference.inputs`):
a 50,000-map bank of 128-frame maps is 3.3 GB of float32 maps but 0.2 GB of inputs. The
inputs can be cached in a folder under a name made of the bank's content hash and the input
configuration, so that retraining on the same bank skips the reduction.

Experimental maps are checked against the model's configuration: a file that records its
configuration (banks, pseudo-experiments) must have the model's; every map must have the
model's q and time window. Maps on another number of frames over the same window are binned
or resampled to the model's grid (:func:`gbsbi.io.resample.resample`), with a note.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from gbsbi.errors import GbsbiError
from gbsbi.inference.inputs import InputConfig, network_inputs
from gbsbi.io.atomic import atomic_path
from gbsbi.io.mapsfile import Maps, read_maps
from gbsbi.io.resample import resample
from simulators.config import (
    SINGLE_BOUNDARY,
    ConfigError,
    ExperimentConfig,
    MeasurementPrior,
    Prior,
    SamplePrior,
)

#: Maps reduced at a time when reading a bank (128 frames: 32 MiB of float32 maps).
CHUNK = 512
#: Relative tolerance on q and on the time window of experimental maps.
RTOL = 1e-2
#: Experiment settings that may differ between the model and a maps file (resampled).
RESAMPLED = ("n_frames",)


@dataclass(frozen=True)
class BankSetup:
    """What made a bank: configuration, prior, nuisances, measurement, and its hashes."""

    config: ExperimentConfig
    prior: Prior
    nuisance: MeasurementPrior
    measurement: str
    n: int
    content_hash: str
    config_hash: str
    sample: SamplePrior = SINGLE_BOUNDARY


@dataclass(frozen=True)
class BankInputs:
    """A bank reduced to network inputs.

    Attributes:
        x: inputs, shape (n, D), float32.
        u: parameters in the unit cube, shape (n, 3), float32.
        theta: parameters (D [nm^2/s], sigma [J/m^2], c), shape (n, 3).
        temperature: K, shape (n,).
        setup: what made the bank.
    """

    x: np.ndarray
    u: np.ndarray
    theta: np.ndarray
    temperature: np.ndarray
    setup: BankSetup


@dataclass(frozen=True)
class ScanInputs:
    """Experimental maps reduced to network inputs.

    Attributes:
        x: inputs, shape (m, D), float32.
        maps: the maps on the model's frame grid with their conditions.
        content_hash: SHA-256 of the file's maps, times, temperatures and q.
        notes: what was done to the maps (resampling), one line each.
        extra: per-scan datasets of the file with a leading axis of m (``phi`` and the like).
    """

    x: np.ndarray
    maps: Maps
    content_hash: str
    notes: tuple[str, ...] = ()
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _open(path: str | os.PathLike) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise GbsbiError(f"{path}: no such file") from None
    except OSError as err:
        raise GbsbiError(f"{path}: not a readable HDF5 file ({err})") from None


def _recorded_config(f: h5py.File, path: str | os.PathLike) -> dict | None:
    """The JSON ``config`` attribute of a file, or None where it records none."""
    text = f.attrs.get("config")
    if text is None:
        return None
    try:
        data = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except ValueError:
        raise GbsbiError(f"{path}: root attribute 'config' is not valid JSON") from None
    if not isinstance(data, dict):
        raise GbsbiError(f"{path}: root attribute 'config' is not a JSON object")
    return data


def read_bank_setup(path: str | os.PathLike) -> BankSetup:
    """The configuration, prior and measurement of a bank written by ``gbsbi simulate``."""
    with _open(path) as f:
        data = _recorded_config(f, path)
        if f.attrs.get("kind") != "bank" or data is None:
            raise GbsbiError(
                f"{path}: not a simulation bank (no 'kind = bank' and 'config' root attributes); "
                "make one with `gbsbi simulate --n N --measurement fast --out BANK.h5`"
            )
        for name in ("C", "theta", "temperature"):
            if name not in f:
                raise GbsbiError(f"{path}: dataset '{name}' is missing")
        n = f["C"].shape[0]
        content = str(f.attrs.get("content_hash", ""))
        chash = str(f.attrs.get("config_hash", ""))
    try:
        config = ExperimentConfig.from_dict(data["experiment"])
        prior = Prior.from_record(data["prior"])
        nuisance = MeasurementPrior.from_record(data.get("nuisance", {}))
        sample = SamplePrior.from_record(data.get("sample"))
    except (ConfigError, KeyError, TypeError) as err:
        raise GbsbiError(f"{path}: its recorded configuration is not readable ({err})") from None
    return BankSetup(config, prior, nuisance, str(data.get("measurement", "none")), n, content,
                     chash, sample)


def default_cache() -> Path:
    """The folder for reduced bank inputs: ``$GBSBI_CACHE``, else ``$XDG_CACHE_HOME/gbsbi``,
    else ``~/.cache/gbsbi`` (never the working folder, so never a checkout)."""
    if os.environ.get("GBSBI_CACHE"):
        return Path(os.environ["GBSBI_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gbsbi"


def _cache_file(folder: Path, setup: BankSetup, inputs: InputConfig) -> Path:
    key = hashlib.sha256(json.dumps(inputs.to_dict(), sort_keys=True).encode()).hexdigest()
    return folder / f"inputs-{setup.content_hash[:16]}-{key[:12]}.npy"


def bank_inputs(
    path: str | os.PathLike,
    inputs: InputConfig,
    *,
    cache: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> BankInputs:
    """Read a bank and reduce its maps to network inputs, a chunk at a time.

    Args:
        path: the bank (HDF5, from ``gbsbi simulate``).
        inputs: the reduction.
        cache: a folder for the reduced inputs, or None.
        progress: called with the number of maps reduced after each chunk.
    """
    setup = read_bank_setup(path)
    with _open(path) as f:
        theta = f["theta"][()]
        temperature = f["temperature"][()]
        age = f["age"][()] if "age" in f else None
        cached = _cache_file(Path(cache), setup, inputs) if cache is not None else None
        if cached is not None and cached.exists():
            x = np.load(cached)
            if progress is not None:
                progress(len(x))
        else:
            T = f["C"].shape[-1]
            if T <= inputs.bins:
                raise GbsbiError(f"{path}: maps of {T} frames are too small for "
                                 f"{inputs.bins} bins")
            parts = []
            for start in range(0, setup.n, CHUNK):
                stop = min(start + CHUNK, setup.n)
                parts.append(network_inputs(f["C"][start:stop], temperature[start:stop], inputs,
                                            None if age is None else age[start:stop]))
                if progress is not None:
                    progress(stop - start)
            x = np.concatenate(parts)
            if cached is not None:
                _save_cache(cached, x)
    u = setup.prior.to_unit(theta).astype(np.float32)
    return BankInputs(x, u, theta, temperature, setup)


def _save_cache(path: Path, x: np.ndarray) -> None:
    """Write reduced inputs to the cache; a cache that cannot be written is skipped (it only
    saves time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, x)
    except (OSError, GbsbiError):
        pass


def bank_sample(
    path: str | os.PathLike, inputs: InputConfig, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, BankSetup]:
    """Network inputs of n maps of a bank drawn at random without replacement (all of them
    when the bank holds fewer), read without the rest of the bank.

    Returns:
        x, shape (n, D), float32; theta, shape (n, 3); the bank's setup.
    """
    setup = read_bank_setup(path)
    pick = np.sort(np.random.default_rng(seed).permutation(setup.n)[: max(0, n)])
    with _open(path) as f:
        if f["C"].shape[-1] <= inputs.bins:
            raise GbsbiError(f"{path}: maps of {f['C'].shape[-1]} frames are too small for "
                             f"{inputs.bins} bins")
        parts = [network_inputs(f["C"][chunk], f["temperature"][chunk], inputs,
                                f["age"][chunk] if "age" in f else None)
                 for chunk in np.array_split(pick, max(1, -(-len(pick) // CHUNK)))
                 if len(chunk)]
        theta = f["theta"][pick] if len(pick) else np.zeros((0, 3))
    x = np.concatenate(parts) if parts else np.zeros((0, inputs.layout.size),
                                                     np.float32)
    return x, theta, setup


def bank_maps(path: str | os.PathLike,
              index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maps C, shape (k, T, T), float32, temperatures and window ages (0 in a bank
    without ages), each shape (k,), of a bank's maps ``index`` (in the order given), read
    without the rest of the bank."""
    index = np.asarray(index, dtype=np.int64)
    order = np.argsort(index)
    with _open(path) as f:
        C = f["C"][index[order]] if len(index) else np.zeros((0, *f["C"].shape[1:]),
                                                              np.float32)
        temperature = f["temperature"][()][index]
        age = f["age"][()][index] if "age" in f else np.zeros(len(index))
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return C[back], temperature, age


def maps_hash(maps: Maps) -> str:
    """SHA-256 of the maps, frame times, temperatures and q, in that order."""
    digest = hashlib.sha256()
    for value in (maps.C, maps.t, maps.temperature, maps.q):
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def check_experiment(recorded: dict | None, config: ExperimentConfig, path: str) -> None:
    """Refuse a file made with another experiment configuration, naming the value."""
    if recorded is None or not isinstance(recorded.get("experiment"), dict):
        return
    ours = config.to_dict()
    for key, value in sorted(recorded["experiment"].items()):
        if key in RESAMPLED or key not in ours:
            continue
        if value != ours[key]:
            raise GbsbiError(
                f"{path}: made with {key} = {value!r}, the model's configuration has "
                f"{key} = {ours[key]!r}; use a model trained for this configuration"
            )


def temperature_warnings(maps: Maps, prior: Prior, what: str = "posterior") -> list[str]:
    """One warning per scan whose temperature or window age lies outside the training bank's
    range (its ``what``, posterior or estimate, is an extrapolation); a model without ages
    reads every window as one that starts at the initial shape, and says so."""
    low, high = prior.temperature
    lines = [f"scan {name!r}: T = {t:g} K lies outside the model's training range "
             f"{low:g}-{high:g} K; its {what} is an extrapolation"
             for name, t in zip(maps.names(), maps.temperature, strict=True)
             if not low <= t <= high]
    young, old = prior.age
    for name, age in zip(maps.names(), maps.ages, strict=True):
        if not prior.aged and age > 0:
            lines.append(f"scan {name!r}: its window starts at age {age:g} s, but this model "
                         f"knows no ages and reads it as a fresh start; train on a bank with "
                         f"prior.age covering it")
        elif prior.aged and not young <= age <= old:
            lines.append(f"scan {name!r}: age {age:g} s lies outside the model's training range "
                         f"{young:g}-{old:g} s; its {what} is an extrapolation")
    return lines


def conform(maps: Maps, config: ExperimentConfig, path: str) -> tuple[Maps, tuple[str, ...]]:
    """Maps on the model's grid: check q and the window, resample the frames.

    Returns:
        The maps (resampled where needed) and notes on what was done.
    """
    names = maps.names()
    bad_q = np.flatnonzero(~np.isclose(maps.q, config.q, rtol=RTOL, atol=0))
    if len(bad_q):
        k = bad_q[0]
        raise GbsbiError(
            f"{path}: scan {names[k]!r} has q = {maps.q[k]:g} nm^-1, the model's q is "
            f"{config.q:g} nm^-1; use a model trained for this q"
        )
    T = maps.C.shape[-1]
    window = T * (maps.t[1] - maps.t[0]) if T > 1 else 0.0
    if not np.isclose(window, config.window, rtol=RTOL, atol=0):
        raise GbsbiError(
            f"{path}: the maps span a window of {window:g} s ({T} frames of "
            f"{window / T:g} s), the model's window is {config.window:g} s; use a model trained "
            "for this window"
        )
    empty = [k for k in range(len(maps)) if not np.isfinite(_off_diagonal(maps.C[k])).any()]
    if empty:
        raise GbsbiError(f"{path}: scan {names[empty[0]]!r} has no finite off-diagonal entry "
                         "(an all-NaN map)")
    if T == config.n_frames:
        return maps, ()
    C, how = resample(maps.C.astype(np.float64), config.n_frames)
    note = (f"{path}: maps of {T} frames {how} to the model's {config.n_frames} frames over "
            f"the same {config.window:g} s window")
    out = Maps(C.astype(np.float32), config.t, maps.temperature, maps.q, maps.scan, maps.group,
               maps.theta, maps.age)
    return out, (note,)


def _off_diagonal(C: np.ndarray) -> np.ndarray:
    return C[~np.eye(C.shape[-1], dtype=bool)]


def scan_inputs(
    path: str | os.PathLike, config: ExperimentConfig, inputs: InputConfig
) -> ScanInputs:
    """Read an experimental maps file and reduce its maps to network inputs.

    Args:
        path: a maps file (``gbsbi import``, ``gbsbi correlate``, pseudo-experiments).
        config: the model's experiment configuration.
        inputs: the model's reduction.
    """
    maps = read_maps(path)
    with _open(path) as f:
        recorded = _recorded_config(f, path)
        extra = {k: f[k][()] for k in ("phi_noiseless",)
                 if k in f and f[k].shape == (len(maps),)}
    check_experiment(recorded, config, str(path))
    content = maps_hash(maps)
    maps, notes = conform(maps, config, str(path))
    x = network_inputs(maps.C, maps.temperature, inputs, maps.ages)
    return ScanInputs(x, maps, content, notes, extra)


def labelled_inputs(
    path: str | os.PathLike,
    config: ExperimentConfig,
    prior: Prior,
    inputs: InputConfig,
    *,
    cache: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Network inputs and true parameters of a bank or of a maps file that knows theta.

    Args:
        path: a simulation bank (``gbsbi simulate``) or a maps file with ``theta``
            (pseudo-experiments).
        config: the model's experiment configuration (the file must have it).
        prior: the model's prior (theta must lie inside it).
        inputs: the model's reduction.
        cache: a folder for a bank's reduced inputs, or None.

    Returns:
        x, shape (n, D), u = to_unit(theta), shape (n, 3), and the file's content hash.
    """
    with _open(path) as f:
        is_bank = f.attrs.get("kind") == "bank"
    if is_bank:
        setup = read_bank_setup(path)
        check_experiment({"experiment": setup.config.to_dict()}, config, str(path))
        if setup.prior != prior:
            raise GbsbiError(f"{path}: simulated under another prior than the model's")
        data = bank_inputs(path, inputs, cache=cache)
        return data.x, data.u, setup.content_hash
    scans = scan_inputs(path, config, inputs)
    if scans.maps.theta is None:
        raise GbsbiError(f"{path}: the maps have no known parameters (dataset 'theta'); a "
                         "check needs a bank or pseudo-experiments")
    theta = scans.maps.theta
    if not prior.contains(theta).all():
        k = int(np.flatnonzero(~prior.contains(theta))[0])
        raise GbsbiError(f"{path}: theta of map {k} = {theta[k].tolist()} lies outside the "
                         "model's prior")
    return scans.x, prior.to_unit(theta).astype(np.float32), scans.content_hash
