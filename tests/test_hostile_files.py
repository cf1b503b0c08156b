"""A corpus of hostile HDF5 files, written here with h5py, through every reading command.

Each must give one line on stderr naming the file, exit status 2, no traceback and no output
file; the maps reader (:func:`gbsbi.io.mapsfile.read_maps`, which the inference commands use)
must raise a :class:`GbsbiError` naming the file. A dataset declared absurdly large is refused
from its header, before it is read.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from gbsbi.cli import main
from gbsbi.errors import GbsbiError
from gbsbi.io.mapsfile import MAX_MAPS_BYTES, read_maps

T, N = 16, 2


def _good(f: h5py.File, skip: tuple[str, ...] = ()) -> None:
    """A valid small maps file (a bank: theta and phi too), less the entries in ``skip``."""
    rng = np.random.default_rng(0)
    a = rng.random((N, T, T))
    values = {
        "C": (1 + 0.1 * (a + np.swapaxes(a, 1, 2))).astype(np.float32),
        "t": np.arange(T, dtype=float), "temperature": np.array([300.0, 350.0]),
        "q": np.array([0.1, 0.1]), "theta": np.array([[1e-4, 0.3, 0.2], [2e-4, 0.5, 0.1]]),
        "phi": np.array([0.1, 0.2]),
    }
    if "format" not in skip:
        f.attrs["format"] = "gbsbi-maps"
    if "version" not in skip:
        f.attrs["version"] = 1
    for name, value in values.items():
        if name not in skip:
            f[name] = value


def _maps_file(tmp: Path, name: str, skip: tuple[str, ...] = (), extra=None) -> Path:
    path = tmp / name
    with h5py.File(path, "w") as f:
        _good(f, skip)
        if extra is not None:
            extra(f)
    return path


def _attr(key: str, value: object):
    def set_attr(f: h5py.File) -> None:
        f.attrs[key] = value
    return set_attr


def _data(key: str, value: object):
    def set_data(f: h5py.File) -> None:
        f[key] = value
    return set_data


def _truncated(tmp: Path) -> Path:
    path = _maps_file(tmp, "cut.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _text_file(tmp: Path) -> Path:
    (tmp / "notes.h5").write_text("this is not HDF5\n")
    return tmp / "notes.h5"


def _absurd_c(f: h5py.File) -> None:
    f.create_dataset("C", shape=(64, 10**5, 10**5), dtype=np.float32, chunks=(1, 16, 16))


HOSTILE = {
    "non-numeric C": (lambda p: _maps_file(p, "text.h5", ("C",), _data(
        "C", np.full((N, T, T), "x", dtype="S1"))), "'C' holds text, expected numbers"),
    "C is a group": (lambda p: _maps_file(p, "group.h5", ("C",), lambda f: f.create_group("C")),
                     "'C' is a group"),
    "version is text": (lambda p: _maps_file(p, "v.h5", ("version",), _attr("version", "one")),
                        "'version' is 'one', expected the integer 1"),
    "version 1.5": (lambda p: _maps_file(p, "v15.h5", ("version",), _attr("version", 1.5)),
                    "'version' is 1.5"),
    "version 2": (lambda p: _maps_file(p, "v2.h5", ("version",), _attr("version", 2)),
                  "version 2"),
    "not a maps file": (lambda p: _maps_file(p, "other.h5", ("format",)), "not a gbsbi maps"),
    "dangling external link": (lambda p: _maps_file(p, "ext.h5", ("C",), _data(
        "C", h5py.ExternalLink("gone.h5", "/C"))), "external link to gone.h5:/C"),
    "dangling soft link": (lambda p: _maps_file(p, "soft.h5", ("C",), _data(
        "C", h5py.SoftLink("/nowhere"))), "a link to /nowhere"),
    "half-maps of another shape": (lambda p: _maps_file(p, "halves.h5", extra=lambda f: (
        f.create_dataset("C_half_a", data=np.ones((N, T, T))),
        f.create_dataset("C_half_b", data=np.ones((N, T - 1, T - 1))))),
        "'C_half_b' has shape (2, 15, 15), expected (2, 16, 16)"),
    "one half-map": (lambda p: _maps_file(p, "half.h5", extra=_data(
        "C_half_a", np.ones((N, T, T)))), "not the other half-map"),
    "absurd C": (lambda p: _maps_file(p, "huge.h5", ("C",), _absurd_c), "GiB as float32"),
    "absurd t": (lambda p: _maps_file(p, "huge_t.h5", ("t",), lambda f: f.create_dataset(
        "t", shape=(10**9,), dtype=float, chunks=(1024,))), "'t' has shape (1000000000,)"),
    "temperature NaN": (lambda p: _maps_file(p, "nan.h5", ("temperature",), _data(
        "temperature", np.array([300.0, np.nan]))), "'temperature' must be finite and > 0"),
    "no maps": (lambda p: _maps_file(p, "empty.h5", ("C",), _data(
        "C", np.zeros((0, T, T), np.float32))), "at least one map"),
    "scan of numbers": (lambda p: _maps_file(p, "scan.h5", extra=_data("scan", np.arange(N))),
                        "'scan' holds int64, expected text"),
    "theta (n, 2)": (lambda p: _maps_file(p, "theta.h5", ("theta",), _data(
        "theta", np.ones((N, 2)))), "'theta' has shape (2, 2), expected (2, 3)"),
    "missing q": (lambda p: _maps_file(p, "noq.h5", ("q",)), "dataset 'q' is missing"),
    "truncated": (_truncated, "not a readable HDF5 file"),
    "not HDF5": (_text_file, "not a readable HDF5 file"),
    "a folder": (lambda p: (p / "folder.h5").mkdir() or p / "folder.h5", "is a folder"),
}

#: The reading commands and their arguments beside the file; each writes into out/.
COMMANDS = {
    "phi": lambda path, out: ["phi", str(path), "--csv", str(out / "phi.csv")],
    "plot": lambda path, out: ["plot", str(path), "--out", str(out / "figs")],
}


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_reading_command_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, case: str, command: str
) -> None:
    make, message = HOSTILE[case]
    path = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    err = _run(capsys, COMMANDS[command](path, out))
    assert err.startswith(f"gbsbi {command}: error: ") and path.name in err
    if command == "phi" or "not a simulation bank" not in err:
        assert message in err, err
    assert list(out.iterdir()) == []  # no output, no empty folder


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_the_maps_reader_refuses_with_the_file_named(tmp_path: Path, case: str) -> None:
    make, message = HOSTILE[case]
    path = make(tmp_path)
    with pytest.raises(GbsbiError) as caught:
        read_maps(path)
    assert path.name in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_import_refuses_a_hostile_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    path = HOSTILE[case][0](tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    err = _run(capsys, ["import", str(path), "--out", str(out / "m.h5"), "--temperature",
                        "300", "--q", "0.1", "--frame-time", "1"])
    assert err.startswith("gbsbi import: error: ") and path.name in err
    assert list(out.iterdir()) == []


def test_format_stored_as_bytes_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture):
    path = _maps_file(tmp_path, "bytes.h5", ("format",), _attr("format", np.bytes_(b"gbsbi-maps")))
    assert len(read_maps(path)) == N
    assert main(["phi", str(path)]) == 0
    assert "map 1" in capsys.readouterr().out


def test_the_size_limit_is_read_from_the_header(tmp_path: Path) -> None:
    """The absurd C declares 2.56 TB and holds no data: refused at once, from its shape."""
    path = _maps_file(tmp_path, "huge.h5", ("C",), _absurd_c)
    assert path.stat().st_size < 10**6 and 64 * 10**10 * 4 > MAX_MAPS_BYTES
    with pytest.raises(GbsbiError, match=r"declares shape \(64, 100000, 100000\)"):
        read_maps(path)


# --- frame files for `gbsbi correlate` -----------------------------------------------------------

GEOMETRY = ["--center", "8", "8", "--pixel-size", "75", "--distance", "5", "--wavelength", "1",
            "--temperature", "300", "--frame-time", "1", "--q-ring", "0", "1"]


def _eiger(tmp: Path, name: str, fill) -> Path:
    path = tmp / name
    with h5py.File(path, "w") as f:
        fill(f)
    return path


def _frames(f: h5py.File, name: str = "entry/data/data_000001", T_frames: int = 8) -> None:
    f[name] = np.ones((T_frames, 16, 16), dtype=np.uint16)


EIGER = {
    "text frames": (lambda p: _eiger(p, "text.h5", _data(
        "entry/data/data_000001", np.full((4, 16, 16), "x", dtype="S1"))), "expected integer"),
    "dangling block": (lambda p: _eiger(p, "link.h5", lambda f: (_frames(f), f.__setitem__(
        "entry/data/data_000002", h5py.ExternalLink("gone.h5", "/data")))), "data_000002"),
    "blocks of two shapes": (lambda p: _eiger(p, "shapes.h5", lambda f: (_frames(f), f.__setitem__(
        "entry/data/data_000002", np.ones((4, 16, 15), np.uint16)))), "has frames of (16, 15)"),
    "mask of another shape": (lambda p: _eiger(p, "mask.h5", lambda f: (_frames(f), f.__setitem__(
        "entry/instrument/detector/detectorSpecific/pixel_mask", np.zeros((8, 8), np.uint32)))),
        "pixel_mask must be integers of shape (16, 16)"),
    "pixel size in furlongs": (lambda p: _eiger(p, "units.h5", lambda f: (
        _frames(f), f.__setitem__("entry/instrument/detector/x_pixel_size", 75e-6),
        f["entry/instrument/detector/x_pixel_size"].attrs.__setitem__("units", "furlong"))),
        "units 'furlong'"),
    "absurd frame count": (lambda p: _eiger(p, "long.h5", lambda f: f.create_dataset(
        "entry/data/data_000001", shape=(10**6, 16, 16), dtype=np.uint16,
        chunks=(1, 16, 16))), "accumulators"),
    "not an Eiger file": (lambda p: _eiger(p, "other.h5", _data("x", np.zeros(3))), "entry/data"),
}


@pytest.mark.parametrize("case", sorted(EIGER))
def test_correlate_refuses_a_hostile_frame_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    make, message = EIGER[case]
    path = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    err = _run(capsys, ["correlate", str(path), "--out", str(out / "m.h5"), *GEOMETRY])
    assert err.startswith("gbsbi correlate: error: ") and path.name in err and message in err, err
    assert list(out.iterdir()) == []
