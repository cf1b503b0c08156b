"""``gbsbi import``: every beamline layout, the resampling paths and every kind of bad input.

Beamline files are written here with h5py in the layouts that pyXpcsViewer / boost_corr (APS
8-ID-I), xpcs_webplot (legacy 8-ID-I) and pyCHX (NSLS-II CHX) read; see gbsbi/io/beamline.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from gbsbi.cli import main
from gbsbi.io.importers import ImportOptions, import_maps
from gbsbi.io.mapsfile import Maps, read_maps, write_maps
from gbsbi.io.resample import (
    binning_matrix,
    complete_triangle,
    interpolation_matrix,
    resample,
    symmetrise,
)
from simulators.config import ExperimentConfig

REAL_MAP = Path(__file__).parent / "data" / "bnl_two_time_350.npy"
ANGSTROM_INV = "\u00c5\u207b\u00b9"  # the unit string pyXpcsViewer shows, A^-1


def two_time(T: int, seed: int = 0, tau: float = 8.0) -> np.ndarray:
    """A symmetric, positive, non-Toeplitz map C = 1 + beta(t1, t2) exp(-|t1 - t2| / tau)."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    beta = 0.2 + 0.1 * (i + j) / (2 * T)
    noise = rng.normal(0.0, 0.005, (T, T))
    return 1.0 + beta * np.exp(-np.abs(i - j) / tau) + (noise + noise.T) / 2


def write_aps(path: Path, maps: np.ndarray, temperature_c: float | None = 26.85) -> None:
    """APS 8-ID-I results file: upper triangles, q-phi qmap (n_q = 3, n_phi = 2)."""
    with h5py.File(path, "w") as f:
        for k, C in enumerate(maps, start=1):
            f[f"/xpcs/twotime/correlation_map/c2_{k:05d}"] = np.triu(C).astype(np.float32)
        f["/xpcs/twotime/processed_bins"] = np.array([2, 4][: len(maps)])
        f["/xpcs/twotime/config/stride_frame"] = 2
        f["/xpcs/twotime/config/avg_frame"] = 1
        f["/xpcs/qmap/dynamic_v_list_dim0"] = np.array([0.002, 0.004, 0.006])
        f["/xpcs/qmap/dynamic_v_list_dim1"] = np.array([0.0, 90.0])
        f["/xpcs/qmap/dynamic_num_pts"] = np.array([3, 2])
        f["/xpcs/qmap/dynamic_index_mapping"] = np.array([0, 2, 3, 5])
        f["/xpcs/qmap/map_names"] = np.array([b"q", b"phi"])
        f["/xpcs/qmap/map_units"] = np.array([ANGSTROM_INV.encode(), b"deg"])
        f["/entry/instrument/detector_1/frame_time"] = 0.1
        if temperature_c is not None:
            f["/entry/sample/qnw1_temperature"] = temperature_c


def write_legacy(path: Path, maps: np.ndarray) -> None:
    """Legacy 8-ID-I file: /exchange/C2T_all/g2_<label>, (1, n) shaped metadata."""
    with h5py.File(path, "w") as f:
        for label, C in zip((1, 3), maps, strict=False):
            f[f"/exchange/C2T_all/g2_{label:05d}"] = np.triu(C)
        f["/xpcs/dqlist"] = np.array([[0.001, 0.002, 0.003, 0.004]])
        f["/measurement/instrument/detector/exposure_period"] = np.array([[0.5]])
        f["/xpcs/avg_frames"] = np.array([[1]])
        f["/xpcs/stride_frames"] = np.array([[2]])
        f["/measurement/sample/temperature_A"] = np.array([[126.85]])


def write_pychx(path: Path, g12b: np.ndarray, key: str = "g12b") -> None:
    """pyCHX export_xpcs_results_to_h5: /g12b (T, T, n_q), /md and /qval_dict attributes."""
    with h5py.File(path, "w") as f:
        f[key] = g12b
        md = f.create_dataset("md", data=np.zeros(1, dtype="i"))
        md.attrs["uid"] = "synthetic"
        md.attrs["frame_time"] = 0.25
        qval = f.create_dataset("qval_dict", data=np.zeros(1, dtype="i"))
        for j in range(g12b.shape[2]):
            qval.attrs[str(j)] = np.array([0.005 * (j + 1)])


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    rc = main(["import", *map(str, argv)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def offdiag(C: np.ndarray) -> np.ndarray:
    T = C.shape[-1]
    return C[..., ~np.eye(T, dtype=bool)]


# --- layouts ----------------------------------------------------------------------------------


def test_aps_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    full = np.stack([two_time(64, seed=1), two_time(64, seed=2)])
    write_aps(tmp_path / "A001_results.hdf", full)
    out = tmp_path / "maps.h5"
    rc, stdout, err = run(capsys, tmp_path / "A001_results.hdf", "--out", out, "--frames", 32)
    assert rc == 0, err
    maps = read_maps(out)
    # c2_00001 -> bin label 2 -> (q, phi) cell 2 -> q index 1; c2_00002 -> label 4 -> cell 5 -> 2
    np.testing.assert_allclose(maps.q, [0.04, 0.06])
    np.testing.assert_allclose(maps.temperature, 300.0)
    dt = 0.1 * 2  # frame_time x stride_frame x avg_frame, then binned by 2
    np.testing.assert_allclose(maps.t, 2 * dt * np.arange(32))
    assert list(maps.scan) == ["A001_results/c2_00001", "A001_results/c2_00002"]
    expected = resample(full.astype(np.float32).astype(np.float64), 32)[0]
    np.testing.assert_allclose(maps.C, expected, rtol=1e-6)
    np.testing.assert_array_equal(maps.C, np.swapaxes(maps.C, 1, 2))
    assert "binned 64 -> 32 frames" in stdout
    assert "read as Celsius" in stdout and "300.00 K" in stdout
    assert "triangle" not in stdout  # half storage is this layout's normal form


def test_aps_layout_without_temperature_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_aps(tmp_path / "a.hdf", two_time(16)[None], temperature_c=None)
    rc, _, err = run(capsys, tmp_path / "a.hdf", "--out", tmp_path / "m.h5")
    assert rc == 2 and "--temperature" in err and "a.hdf" in err
    assert not (tmp_path / "m.h5").exists()
    rc, _, err = run(capsys, tmp_path / "a.hdf", "--out", tmp_path / "m.h5", "--temperature", 420)
    assert rc == 0, err
    np.testing.assert_allclose(read_maps(tmp_path / "m.h5").temperature, 420.0)


def test_flag_overrides_file_value_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_aps(tmp_path / "a.hdf", two_time(16)[None])
    rc, stdout, err = run(
        capsys, tmp_path / "a.hdf", "--out", tmp_path / "m.h5", "--q", 0.5, "--no-resample"
    )
    assert rc == 0, err
    assert "--q overrides" in stdout
    np.testing.assert_allclose(read_maps(tmp_path / "m.h5").q, 0.5)


def test_aps_legacy_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    full = np.stack([two_time(40, seed=3), two_time(40, seed=4)])
    write_legacy(tmp_path / "B009_0001-1000.hdf", full)
    out = tmp_path / "maps.h5"
    rc, _, err = run(capsys, tmp_path / "B009_0001-1000.hdf", "--out", out, "--no-resample")
    assert rc == 0, err
    maps = read_maps(out)
    np.testing.assert_allclose(maps.q, [0.01, 0.03])  # g2_00001 and g2_00003, A^-1 -> nm^-1
    np.testing.assert_allclose(maps.temperature, 400.0)
    np.testing.assert_allclose(maps.t, 1.0 * np.arange(40))  # 0.5 s x stride 2
    np.testing.assert_allclose(maps.C, full, rtol=1e-6)


def test_pychx_h5_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    g12b = np.stack([two_time(30, seed=s) for s in range(3)], axis=-1)
    write_pychx(tmp_path / "uid=abc_Res.h5", g12b)
    out = tmp_path / "maps.h5"
    rc, _, err = run(
        capsys, tmp_path / "uid=abc_Res.h5", "--out", out, "--temperature", 350, "--no-resample"
    )
    assert rc == 0, err
    maps = read_maps(out)
    np.testing.assert_allclose(maps.q, [0.05, 0.10, 0.15])
    np.testing.assert_allclose(maps.t, 0.25 * np.arange(30))
    np.testing.assert_allclose(maps.C, np.moveaxis(g12b, -1, 0), rtol=1e-6)
    assert list(maps.scan) == ["uid=abc_Res/q0", "uid=abc_Res/q1", "uid=abc_Res/q2"]


def test_pychx_h5_with_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    g12b = two_time(20)[:, :, None]
    write_pychx(tmp_path / "res.h5", g12b, key="twotime/g12b_sub")
    args = (tmp_path / "res.h5", "--out", tmp_path / "m.h5", "--temperature", 300)
    rc, _, err = run(capsys, *args, "--frames", 10)
    assert rc == 2 and "g12b" in err  # the default key is absent: say what was looked for
    rc, _, err = run(capsys, *args, "--frames", 10, "--key", "twotime/g12b_sub")
    assert rc == 0, err
    assert read_maps(tmp_path / "m.h5").C.shape == (1, 10, 10)


def test_pychx_npy_by_shape(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    g12b = np.stack([two_time(24, seed=s) for s in range(2)], axis=-1)
    np.save(tmp_path / "uid=abc_g12b.npy", g12b)
    rc, _, err = run(
        capsys, tmp_path / "uid=abc_g12b.npy", "--out", tmp_path / "m.h5", "--no-resample",
        "--temperature", 300, "--q", 0.1, 0.2, "--frame-time", 2.0,
    )
    assert rc == 0, err
    maps = read_maps(tmp_path / "m.h5")
    np.testing.assert_allclose(maps.C, np.moveaxis(g12b, -1, 0), rtol=1e-6)
    np.testing.assert_allclose(maps.q, [0.1, 0.2])


@pytest.mark.parametrize("kind", ["npy", "stack", "txt", "csv"])
def test_plain_files(tmp_path: Path, capsys: pytest.CaptureFixture, kind: str) -> None:
    C = two_time(20)
    if kind == "npy":
        path, expected = tmp_path / "m.npy", C[None]
        np.save(path, C)
    elif kind == "stack":
        path, expected = tmp_path / "m.npy", np.stack([C, C + 0.1, C + 0.2])
        np.save(path, expected)
    else:
        path, expected = tmp_path / f"m.{kind}", C[None]
        np.savetxt(path, C, delimiter="," if kind == "csv" else " ")
    rc, _, err = run(
        capsys, path, "--out", tmp_path / "o.h5", "--no-resample", "--temperature", 300,
        "--q", 0.2, "--frame-time", 15.625,
    )
    assert rc == 0, err
    maps = read_maps(tmp_path / "o.h5")
    np.testing.assert_allclose(maps.C, expected, rtol=1e-6)
    np.testing.assert_allclose(maps.t, 15.625 * np.arange(20))
    assert len(maps.scan) == len(expected)


def test_several_files_concatenated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    np.save(tmp_path / "a.npy", two_time(64, seed=1))  # 64 frames x 1 s
    np.savetxt(tmp_path / "b.txt", two_time(32, seed=2))  # 32 frames x 2 s: same window
    np.save(tmp_path / "c.npy", np.stack([two_time(48, seed=s) for s in (3, 4)]))
    rc, stdout, err = run(
        capsys, tmp_path / "a.npy", tmp_path / "b.txt", tmp_path / "c.npy",
        "--out", tmp_path / "m.h5", "--frames", 16, "--q", 0.3,
        "--temperature", 300, 350, 400, "--frame-time", 1, 2, 64 / 48,
        "--scan", "s1", "s2", "s3", "--group", "fine", "coarse", "coarse",
    )
    assert rc == 0, err
    maps = read_maps(tmp_path / "m.h5")
    assert maps.C.shape == (4, 16, 16)
    np.testing.assert_allclose(maps.temperature, [300, 350, 400, 400])
    np.testing.assert_allclose(maps.t, 4.0 * np.arange(16))
    assert list(maps.scan) == ["s1", "s2", "s3/0", "s3/1"]
    assert list(maps.group) == ["fine", "coarse", "coarse", "coarse"]
    assert "a.npy: binned 64 -> 16" in stdout and "b.txt: binned 32 -> 16" in stdout
    assert "c.npy: 2 maps, binned 48 -> 16" in stdout


def test_default_grid_is_the_models(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Without --frames, maps land on the model's frame grid (the configuration's n_frames)."""
    np.save(tmp_path / "m.npy", two_time(256))
    rc, stdout, err = run(capsys, tmp_path / "m.npy", "--out", tmp_path / "m.h5",
                          "--temperature", 300, "--q", 0.1, "--frame-time", 1)
    assert rc == 0, err
    T = ExperimentConfig().n_frames
    assert read_maps(tmp_path / "m.h5").C.shape == (1, T, T)
    assert f"binned 256 -> {T} frames" in stdout
    assert import_maps([tmp_path / "m.npy"], ImportOptions(
        temperature=(300.0,), q=(0.1,), frame_time=(1.0,))).maps.C.shape == (1, T, T)


# --- resampling, completion, symmetry ---------------------------------------------------------


def test_binning_is_a_nan_aware_block_average() -> None:
    C = two_time(12)
    C[5, :] = C[:, 5] = np.nan  # a dropped frame
    out, how = resample(C[None], 4)
    assert how == "binned"
    blocks = C.reshape(4, 3, 4, 3)
    expected = np.nanmean(np.where(np.eye(12, dtype=bool).reshape(4, 3, 4, 3), np.nan, blocks),
                          axis=(1, 3))
    np.testing.assert_allclose(offdiag(out[0]), offdiag(expected))
    np.testing.assert_allclose(np.diag(out[0]), np.nanmean(np.diag(C).reshape(4, 3), axis=1))
    np.testing.assert_allclose(binning_matrix(12, 4).sum(axis=1), 1.0)


def test_interpolation_is_exact_for_linear_maps_and_keeps_the_diagonal_apart() -> None:
    T, n = 30, 13
    i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    C = 1.0 + 0.015 * (i + j)  # linear in t1 and t2, symmetric
    C[np.arange(T), np.arange(T)] = 50.0  # a huge self-term must not leak off the diagonal
    out, how = resample(C[None], n)
    assert how == "interpolated"
    x = np.clip((np.arange(n) + 0.5) * T / n - 0.5, 0, T - 1)
    xi, xj = np.meshgrid(x, x, indexing="ij")
    exact = 1.0 + 0.015 * (xi + xj)
    np.testing.assert_allclose(offdiag(out[0]), offdiag(exact), rtol=1e-12)
    np.testing.assert_allclose(np.diag(out[0]), 50.0)
    np.testing.assert_allclose(interpolation_matrix(T, n).sum(axis=1), 1.0)


def test_upsampling_leaves_no_gaps_and_no_self_term() -> None:
    C = two_time(20)
    C[np.arange(20), np.arange(20)] = 3.0  # photon self-term on the diagonal
    C[4, :] = C[:, 4] = np.nan  # a dropped frame
    out, how = resample(C[None], 64)
    assert how == "interpolated" and not np.isnan(out).any()
    np.testing.assert_array_equal(out, np.swapaxes(out, 1, 2))
    assert offdiag(out[0]).max() <= np.nanmax(offdiag(C)) + 1e-12
    np.testing.assert_allclose(np.diag(out[0]), 3.0)


def test_interpolation_matches_scipy_bilinear_on_the_real_map() -> None:
    C = np.load(REAL_MAP)
    out, how = resample(C[None], 128)
    assert how == "interpolated"
    x = (np.arange(128) + 0.5) * 350 / 128 - 0.5
    xi, xj = np.meshgrid(x, x, indexing="ij")
    reference = map_coordinates(C, [xi, xj], order=1, mode="nearest")
    # 350 / 128 > 2 frames apart: no off-diagonal stencil touches the native diagonal
    np.testing.assert_allclose(offdiag(out[0]), offdiag(reference), rtol=1e-12)


def test_upper_triangle_is_completed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    C = two_time(16)
    np.save(tmp_path / "half.npy", np.triu(C))
    rc, stdout, err = run(
        capsys, tmp_path / "half.npy", "--out", tmp_path / "m.h5", "--no-resample",
        "--temperature", 300, "--q", 0.1, "--frame-time", 1,
    )
    assert rc == 0, err
    assert "upper-triangle storage completed" in stdout
    np.testing.assert_allclose(read_maps(tmp_path / "m.h5").C[0], C, rtol=1e-6)
    lower, which = complete_triangle(np.tril(C))
    assert which == "lower"
    np.testing.assert_allclose(lower, C)


def test_asymmetric_map_is_symmetrised_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    C = two_time(16)
    skewed = C + np.triu(np.full_like(C, 0.02), 1)
    np.save(tmp_path / "skew.npy", skewed)
    flags = ("--no-resample", "--temperature", 300, "--q", 0.1, "--frame-time", 1)
    rc, _, err = run(capsys, tmp_path / "skew.npy", "--out", tmp_path / "m.h5", *flags)
    assert rc == 0
    assert err.count("\n") == 1 and "warning" in err and "skew.npy" in err and "symmetrised" in err
    np.testing.assert_allclose(read_maps(tmp_path / "m.h5").C[0], (skewed + skewed.T) / 2,
                               rtol=1e-6)
    np.save(tmp_path / "tiny.npy", C + np.triu(np.full_like(C, 1e-6), 1))  # below 1e-3 of range
    rc, _, err = run(capsys, tmp_path / "tiny.npy", "--out", tmp_path / "m2.h5", *flags)
    assert rc == 0 and err == ""
    sym, asym = symmetrise(skewed)
    assert asym > 1e-3 and np.array_equal(sym, sym.T)


# --- the real map -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "how"), [(None, "resampled 350 -> 128 frames by linear interpolation"),
                        (175, "binned 350 -> 175 frames"), (350, None)]
)
def test_real_map_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture, frames: int | None, how: str | None
) -> None:
    native = np.load(REAL_MAP)
    extra = () if frames is None else ("--frames", frames)
    rc, stdout, err = run(
        capsys, REAL_MAP, "--out", tmp_path / "real.h5", "--temperature", 300, "--q", 0.1,
        "--frame-time", 1.0, "--scan", "bnl", *extra,
    )
    assert rc == 0, err
    maps = read_maps(tmp_path / "real.h5")
    T = frames or 128
    assert maps.C.shape == (1, T, T) and maps.C.dtype == np.float32
    np.testing.assert_allclose(maps.t, 350.0 / T * np.arange(T))
    np.testing.assert_array_equal(maps.C, np.swapaxes(maps.C, 1, 2))
    assert native.min() - 1e-6 <= maps.C.min() and maps.C.max() <= native.max() + 1e-6
    if how:
        assert how in stdout
    else:
        assert "binned" not in stdout and "resampled" not in stdout
    if frames == 350:
        np.testing.assert_allclose(maps.C[0], native, rtol=1e-6)


# --- bad input --------------------------------------------------------------------------------


def _npy(tmp_path: Path, name: str, array: np.ndarray) -> Path:
    np.save(tmp_path / name, array, allow_pickle=True)
    return tmp_path / name


def _truncated(tmp_path: Path) -> Path:
    write_aps(tmp_path / "cut.hdf", np.stack([two_time(64)] * 3))
    data = (tmp_path / "cut.hdf").read_bytes()
    (tmp_path / "cut.hdf").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.hdf"


def _foreign(tmp_path: Path) -> Path:
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["/measurement/image"] = np.ones((4, 4))
    return tmp_path / "foreign.h5"


def _eiger(tmp_path: Path) -> Path:
    with h5py.File(tmp_path / "scan_master.h5", "w") as f:
        f["/entry/data/data_000001"] = np.zeros((5, 8, 8), dtype=np.uint16)
    return tmp_path / "scan_master.h5"


def _string_dataset(tmp_path: Path) -> Path:
    with h5py.File(tmp_path / "strings.hdf", "w") as f:
        f["/xpcs/twotime/correlation_map/c2_00001"] = np.array([["a", "b"], ["c", "d"]], "S1")
    return tmp_path / "strings.hdf"


def _maps_file(tmp_path: Path) -> Path:
    maps = Maps(C=two_time(8)[None], t=np.arange(8.0), temperature=[300.0], q=[0.1])
    write_maps(tmp_path / "already.h5", maps)
    return tmp_path / "already.h5"


def _truncated_npy(tmp_path: Path) -> Path:
    path = _npy(tmp_path, "cut.npy", two_time(32))
    path.write_bytes(path.read_bytes()[:2000])
    return path


def _nan_map(tmp_path: Path) -> Path:
    return _npy(tmp_path, "nan.npy", np.full((8, 8), np.nan))


def _negative(tmp_path: Path) -> Path:
    C = two_time(8)
    C[2, 3] = C[3, 2] = -0.4
    return _npy(tmp_path, "neg.npy", C)


BAD_FILES = {
    "non-square": (lambda p: _npy(p, "rect.npy", np.ones((3, 4))), "not square"),
    "non-square stack": (lambda p: _npy(p, "rect3.npy", np.ones((2, 3, 4))), "not square"),
    "all NaN": (_nan_map, "all NaN"),
    "negative": (_negative, "negative"),
    "bool dtype": (lambda p: _npy(p, "bool.npy", np.ones((4, 4), bool)), "dtype boolean"),
    "complex dtype": (lambda p: _npy(p, "cplx.npy", np.ones((4, 4), complex)), "dtype complex"),
    "object dtype": (lambda p: _npy(p, "obj.npy", np.ones((4, 4), object)), "dtype object"),
    "text dataset": (_string_dataset, "dtype text"),
    "truncated HDF5": (_truncated, "not a readable HDF5 file"),
    "truncated npy": (_truncated_npy, "not a readable .npy file"),
    "foreign HDF5": (_foreign, "no known two-time layout"),
    "Eiger frames": (_eiger, "gbsbi correlate"),
    "maps file": (_maps_file, "already a gbsbi maps file"),
    "non-numeric text": (
        lambda p: (p / "bad.txt").write_text("1 2\nx 4\n") and p / "bad.txt",
        "not a numeric text matrix",
    ),
    "ambiguous cube": (lambda p: _npy(p, "cube.npy", np.ones((4, 4, 4))), "--format"),
    "infinite": (lambda p: _npy(p, "inf.npy", np.full((4, 4), np.inf)), "infinite"),
    "not a file": (lambda p: p / "missing.npy", "no such file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_is_one_line_exit_2_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    make, message = BAD_FILES[case]
    path = make(tmp_path)
    out = tmp_path / "out" / "maps.h5"
    out.parent.mkdir()
    rc, stdout, err = run(
        capsys, path, "--out", out, "--temperature", 300, "--q", 0.1, "--frame-time", 1
    )
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("gbsbi import: error: ")
    assert path.name in err and message in err, err
    assert "Traceback" not in err and stdout == ""
    assert list(out.parent.iterdir()) == []  # no output, no temporary file


def test_failed_import_keeps_an_existing_output(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    np.save(tmp_path / "good.npy", two_time(8))
    flags = ("--temperature", 300, "--q", 0.1, "--frame-time", 1, "--no-resample")
    assert run(capsys, tmp_path / "good.npy", "--out", tmp_path / "m.h5", *flags)[0] == 0
    before = (tmp_path / "m.h5").read_bytes()
    rc, _, _ = run(capsys, _negative(tmp_path), "--out", tmp_path / "m.h5", *flags)
    assert rc == 2 and (tmp_path / "m.h5").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npy", "m.h5", "neg.npy"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--q", 0.1, "--frame-time", 1), "--temperature"),
        (("--temperature", 300, "--frame-time", 1), "--q"),
        (("--temperature", 300, "--q", 0.1), "--frame-time"),
        (("--temperature", 300, 310, 320, "--q", 0.1, "--frame-time", 1), "--temperature takes"),
        (("--temperature", -5, "--q", 0.1, "--frame-time", 1), "--temperature must be positive"),
        (("--temperature", 300, "--q", 0.1, "--frame-time", 1, "--frames", 1), "--frames"),
        (("--temperature", 300, "--q", 0.1, "--frame-time", 1, "--frames", 8, "--no-resample"),
         "contradict"),
        (("--temperature", 300, "--q", 0.1, "--frame-time", 1, 2), "time windows"),
        (("--temperature", 300, "--q", 0.1, "--frame-time", 1, 2, "--no-resample"),
         "--no-resample"),
    ],
)
def test_bad_flags_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture, flags: tuple, message: str
) -> None:
    np.save(tmp_path / "a.npy", two_time(16))
    np.save(tmp_path / "b.npy", two_time(16, seed=1))
    rc, _, err = run(capsys, tmp_path / "a.npy", tmp_path / "b.npy", "--out", tmp_path / "m.h5",
                     *flags)
    assert rc == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "m.h5").exists()


def test_library_api_returns_messages(tmp_path: Path) -> None:
    shutil.copy(REAL_MAP, tmp_path / "real.npy")
    result = import_maps(
        [tmp_path / "real.npy"],
        ImportOptions(temperature=(300.0,), q=(0.1,), frame_time=(1.0,), n_frames=70),
    )
    assert result.maps.C.shape == (1, 70, 70) and result.warnings == ()
    assert result.notes == ("real.npy: binned 350 -> 70 frames (block average of 5)",)


# --- windows of long measurements ---------------------------------------------------------------


def test_windows_of_a_long_aps_map_have_ages_and_names(tmp_path: Path, capsys) -> None:
    """A 64-frame APS map (0.2 s per frame) cut into windows of 6.4 s every 3.2 s: three
    windows of 32 frames, ages 0, 3.2, 6.4 s, each the map's block along the diagonal."""
    full = two_time(64, seed=3)[None]
    write_aps(tmp_path / "A002_results.hdf", full)
    out = tmp_path / "w.h5"
    rc, stdout, err = run(capsys, tmp_path / "A002_results.hdf", "--out", out, "--frames", 32,
                          "--window", 6.4, "--stride", 3.2)
    assert rc == 0, err
    maps = read_maps(out)
    np.testing.assert_allclose(maps.age, [0.0, 3.2, 6.4])
    assert list(maps.scan) == ["A002_results/c2_00001@0s", "A002_results/c2_00001@3.2s",
                               "A002_results/c2_00001@6.4s"]
    assert set(maps.group) == {"A002_results"}
    np.testing.assert_allclose(maps.t, 0.2 * np.arange(32))
    for k, start in enumerate((0, 16, 32)):
        block = full[0, start:start + 32, start:start + 32].astype(np.float32)
        np.testing.assert_allclose(maps.C[k], block.astype(np.float64), rtol=1e-6)
    assert "cut into 3 window(s)" in stdout


def test_windows_of_a_npy_map_take_the_given_group(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "long.npy", two_time(96, seed=4))
    out = tmp_path / "w.h5"
    rc, _, err = run(capsys, tmp_path / "long.npy", "--out", out, "--frames", 16,
                     "--temperature", 400, "--q", 1, "--frame-time", 1, "--window", 32,
                     "--stride", 32, "--group", "sample-A")
    assert rc == 0, err
    maps = read_maps(out)
    np.testing.assert_allclose(maps.age, [0, 32, 64])
    assert set(maps.group) == {"sample-A"} and len(maps) == 3


@pytest.mark.parametrize("argv, message", [
    (["--window", 100, "--stride", 10], "longer than its maps"),
    (["--window", 8, "--stride", 0], "--stride"),
    (["--window", 8], "--window and --stride go together"),
])
def test_bad_windows_are_one_line_errors(tmp_path: Path, capsys, argv, message) -> None:
    np.save(tmp_path / "long.npy", two_time(48, seed=5))
    rc, _, err = run(capsys, tmp_path / "long.npy", "--out", tmp_path / "w.h5", "--frames", 8,
                     "--temperature", 400, "--q", 1, "--frame-time", 1, *argv)
    assert rc == 2 and message in err and "\n" not in err.strip()
    assert not (tmp_path / "w.h5").exists()


def test_windows_refuse_a_frame_time_other_than_the_files(tmp_path: Path, capsys) -> None:
    write_aps(tmp_path / "A003_results.hdf", two_time(64, seed=6)[None])
    rc, _, err = run(capsys, tmp_path / "A003_results.hdf", "--out", tmp_path / "w.h5",
                     "--frames", 16, "--frame-time", 0.5, "--window", 6.4, "--stride", 3.2)
    assert rc == 2 and "frame time" in err and "\n" not in err.strip()
