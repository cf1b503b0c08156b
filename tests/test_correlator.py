"""The two-time correlator on a real speckle frame stack, against independent references.

The real stack (tests/data/README.md) is 100 frames of 256 x 256 uint16 photon counts. Integer
counts make every float64 partial sum exact, so the chunked correlator must agree with a plain
per-pixel computation to rounding (tolerance 1e-6 relative, as the issue asks; the observed
error is ~1e-15) and with itself across chunk sizes bit for bit.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from gbsbi.cli import main
from gbsbi.correlator import (
    EigerFrames,
    Geometry,
    NpyFrames,
    checkerboard,
    correlate,
    label_rois,
    open_frames,
    q_ring,
)
from gbsbi.errors import GbsbiError
from gbsbi.io.mapsfile import read_maps
from gbsbi.summaries.phi import phi

DATA = Path(__file__).parent / "data" / "skbeam_speckle_frames_100x256x256.npy.zip"
#: Geometry of the real stack, from its example script (tests/data/README.md).
GEOMETRY = Geometry(center=(143.0, 123.0), pixel_size=108.0, distance=2.23, wavelength=1.546)
GEOMETRY_FLAGS = ["--center", "143", "123", "--pixel-size", "108", "--distance", "2.23",
                  "--wavelength", "1.546"]
RINGS = [(0.01, 0.02), (0.02, 0.03), (0.03, 0.04), (0.04, 0.06)]  # nm^-1
SHAPE = (256, 256)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """The real stack n(t, row, col), shape (100, 256, 256), uint16."""
    with zipfile.ZipFile(DATA) as z, z.open("img_stack5301_5401.npy") as f:
        return np.load(f)


@pytest.fixture(scope="module")
def npy(frames, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("frames") / "stack.npy"
    np.save(path, frames)
    return path


@pytest.fixture(scope="module")
def mask(frames) -> np.ndarray:
    """Pixels that counted at least once: excludes the beamstop and a dead column."""
    return frames.sum(axis=0) > 0


@pytest.fixture(scope="module")
def rings(mask):
    return [q_ring(GEOMETRY, SHAPE, lo, hi, mask) for lo, hi in RINGS]


def loop_two_time(frames: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """C(t1, t2) = <n(t1) n(t2)>_p / (<n(t1)>_p <n(t2)>_p), one pair of frames at a time."""
    n = frames.reshape(frames.shape[0], -1)[:, pixels].astype(np.float64)
    T = n.shape[0]
    C = np.empty((T, T))
    for t1 in range(T):
        for t2 in range(T):
            C[t1, t2] = np.mean(n[t1] * n[t2]) / (np.mean(n[t1]) * np.mean(n[t2]))
    return C


def write_eiger(path: Path, frames: np.ndarray, sizes: list[int], external: bool = False,
                metadata: dict | None = None) -> None:
    """An Eiger-layout master file: entry/data/data_00000k blocks of ``sizes`` frames."""
    with h5py.File(path, "w") as f:
        group = f.create_group("entry/data")
        t0 = 0
        for k, size in enumerate(sizes, start=1):
            name = f"data_{k:06d}"
            block = frames[t0:t0 + size]
            if external:
                data_file = path.with_name(f"{path.stem}_{name}.h5")
                with h5py.File(data_file, "w") as d:
                    d.create_dataset("entry/data/data", data=block, chunks=(1, *block.shape[1:]))
                group[name] = h5py.ExternalLink(data_file.name, "entry/data/data")
            else:
                group.create_dataset(name, data=block, chunks=(1, *block.shape[1:]))
            t0 += size
        for key, (value, units) in (metadata or {}).items():
            ds = f.create_dataset(key, data=value)
            if units:
                ds.attrs["units"] = units


# --- agreement with independent references -----------------------------------------------------


def test_matches_a_direct_per_pixel_loop(npy, frames, rings):
    with open_frames(npy) as source:
        result = correlate(source, rings, chunk_pixels=4096)
    for k, roi in enumerate(rings):
        np.testing.assert_allclose(result.C[k], loop_two_time(frames, roi.pixels), rtol=1e-6)
        np.testing.assert_allclose(result.C[k], result.C[k].T, rtol=1e-12)


def test_matches_scikit_beam_two_time_corr(npy, frames, rings):
    correlation = pytest.importorskip("skbeam.core.correlation")
    labels = np.zeros(SHAPE, dtype=np.int64)
    for k, roi in enumerate(rings, start=1):  # the rings do not overlap
        labels.flat[roi.pixels] = k
    T = frames.shape[0]
    reference = correlation.two_time_corr(labels, frames, T, T + T % 2, 1).g2
    with open_frames(npy) as source:
        result = correlate(source, rings)
    np.testing.assert_allclose(result.C, reference, rtol=1e-6)


def test_half_maps_are_the_maps_of_the_checkerboard_halves(npy, frames, rings):
    with open_frames(npy) as source:
        result = correlate(source, rings[1:2])
    roi = rings[1]
    rows, cols = np.divmod(roi.pixels, SHAPE[1])
    np.testing.assert_array_equal(roi.half, (rows + cols) % 2 == 1)
    a, b = roi.pixels[~roi.half], roi.pixels[roi.half]
    np.testing.assert_allclose(result.C_half_a[0], loop_two_time(frames, a), rtol=1e-6)
    np.testing.assert_allclose(result.C_half_b[0], loop_two_time(frames, b), rtol=1e-6)
    np.testing.assert_array_equal(result.n_pixels[0], [a.size, b.size])


# --- one pass, chunking, memory ----------------------------------------------------------------


def test_several_rois_in_one_pass_equal_separate_passes(npy, rings):
    with open_frames(npy) as source:
        together = correlate(source, rings, chunk_pixels=2048)
        for k, roi in enumerate(rings):
            alone = correlate(source, [roi], chunk_pixels=2048)
            np.testing.assert_array_equal(together.C[k], alone.C[0])
            np.testing.assert_array_equal(together.C_half_a[k], alone.C_half_a[0])
            np.testing.assert_array_equal(together.C_half_b[k], alone.C_half_b[0])


def test_overlapping_rois_are_each_complete(npy, frames, mask):
    rois = [q_ring(GEOMETRY, SHAPE, 0.02, 0.04, mask), q_ring(GEOMETRY, SHAPE, 0.03, 0.05, mask)]
    with open_frames(npy) as source:
        result = correlate(source, rois)
    for k, roi in enumerate(rois):
        np.testing.assert_allclose(result.C[k], loop_two_time(frames, roi.pixels), rtol=1e-6)


def test_result_does_not_depend_on_the_chunk_size(npy, rings):
    """Integer counts: every partial sum is exact in float64, so results agree bit for bit."""
    with open_frames(npy) as source:
        one_row = correlate(source, rings, chunk_pixels=1)
        all_rows = correlate(source, rings, chunk_pixels=10**7)
    for name in ("C", "C_half_a", "C_half_b", "mean_counts"):
        np.testing.assert_array_equal(getattr(one_row, name), getattr(all_rows, name))


class _RecordingSource:
    """A frame source that records every block of frames it hands out."""

    def __init__(self, source: NpyFrames | EigerFrames) -> None:
        self.source, self.reads = source, []
        self.path, self.shape, self.dtype = source.path, source.shape, source.dtype
        self.frame_chunk = source.frame_chunk

    def read_frames(self, t0: int, t1: int, rows: slice, cols: slice) -> np.ndarray:
        block = self.source.read_frames(t0, t1, rows, cols)
        self.reads.append((t0, t1, block.shape[1] * block.shape[2]))
        return block


def test_reads_every_frame_once_in_blocks_of_the_rois_box(npy, rings, monkeypatch):
    """One pass over the frames, in blocks bounded by the read budget, of the ROIs' bounding
    box only; the result equals the direct computation whatever the budget."""
    from gbsbi.correlator import store

    with open_frames(npy) as source:
        reference = correlate(source, rings)
        monkeypatch.setattr(store, "READ_BYTES", 100_000)
        recorder = _RecordingSource(source)
        result = correlate(recorder, rings, chunk_pixels=1000)
    T = source.shape[0]
    starts = [t0 for t0, _, _ in recorder.reads]
    assert len(recorder.reads) > 1 and starts == sorted(starts)
    covered = np.concatenate([np.arange(t0, t1) for t0, t1, _ in recorder.reads])
    np.testing.assert_array_equal(covered, np.arange(T))  # every frame exactly once
    for t0, t1, pixels in recorder.reads:
        assert (t1 - t0) * pixels * 2 <= 100_000
        assert pixels < SHAPE[0] * SHAPE[1] / 4  # only the ROIs' bounding box
    np.testing.assert_array_equal(result.C, reference.C)


def test_eiger_chunks_are_each_read_once(tmp_path, npy, frames, rings, monkeypatch):
    """Eiger files compress chunks of frames: blocks of frames start and end on chunk
    boundaries, so every chunk is decompressed once, even when the pixels go to a scratch
    file; the maps equal those of the .npy stack."""
    from gbsbi.correlator import store

    path = tmp_path / "scan_master.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data_000001", data=frames, chunks=(4, 64, 64),
                         compression="lzf")
    monkeypatch.setattr(store, "READ_BYTES", 100_000)
    monkeypatch.setattr(store, "STORE_BYTES", 10_000)  # force the scratch file
    with open_frames(path) as source:
        assert source.frame_chunk == 4
        recorder = _RecordingSource(source)
        from_h5 = correlate(recorder, rings, scratch=tmp_path)
    assert len(recorder.reads) > 1
    for t0, t1, _ in recorder.reads:
        assert t0 % 4 == 0 and (t1 % 4 == 0 or t1 == frames.shape[0])
    covered = np.concatenate([np.arange(t0, t1) for t0, t1, _ in recorder.reads])
    np.testing.assert_array_equal(covered, np.arange(frames.shape[0]))
    assert list(tmp_path.iterdir()) == [path]  # the scratch file is gone
    with open_frames(npy) as source:
        np.testing.assert_array_equal(from_h5.C, correlate(source, rings).C)


# --- dropped frames, bad pixels ----------------------------------------------------------------


def test_dropped_frames_are_nan_rows_and_columns(tmp_path, frames, rings):
    stack = frames.copy()
    stack[7] = 0  # a frame with no count at all
    path = tmp_path / "stack.npy"
    np.save(path, stack)
    flagged = np.zeros(stack.shape[0], dtype=bool)
    flagged[[20, 21]] = True
    with open_frames(path) as source:
        result = correlate(source, rings, dropped=flagged)
    with open_frames(path) as source:
        reference = correlate(source, rings)
    bad = np.zeros(stack.shape[0], dtype=bool)
    bad[[7, 20, 21]] = True
    np.testing.assert_array_equal(result.dropped, bad)
    for C in (result.C, result.C_half_a, result.C_half_b):
        assert np.all(np.isnan(C[:, bad, :])) and np.all(np.isnan(C[:, :, bad]))
        assert np.all(np.isfinite(C[:, ~bad][:, :, ~bad]))
    good = np.ix_(range(len(rings)), ~bad, ~bad)
    np.testing.assert_array_equal(result.C[good], reference.C[good])
    assert np.isfinite(phi(result.C)).all()


def test_masked_pixels_are_excluded(npy, frames, mask):
    with open_frames(npy) as source:
        masked = correlate(source, [q_ring(GEOMETRY, SHAPE, 0.02, 0.04, mask)])
        unmasked = correlate(source, [q_ring(GEOMETRY, SHAPE, 0.02, 0.04)])
    assert masked.n_pixels.sum() < unmasked.n_pixels.sum()
    pixels = q_ring(GEOMETRY, SHAPE, 0.02, 0.04, mask).pixels
    assert mask.flat[pixels].all()
    np.testing.assert_allclose(masked.C[0], loop_two_time(frames, pixels), rtol=1e-6)


def test_overflow_marker_pixels_are_excluded(tmp_path, frames, rings):
    stack = frames.copy()
    marked = rings[2].pixels[:5]
    stack.reshape(stack.shape[0], -1)[3, marked] = np.iinfo(np.uint16).max
    path = tmp_path / "stack.npy"
    np.save(path, stack)
    with open_frames(path) as source:
        result = correlate(source, rings[2:3])
    assert result.n_excluded[0] == 5 and result.n_pixels[0].sum() == rings[2].pixels.size - 5
    kept = np.setdiff1d(rings[2].pixels, marked)
    np.testing.assert_allclose(result.C[0], loop_two_time(frames, kept), rtol=1e-6)


# --- the split-half Phi ------------------------------------------------------------------------


def test_split_half_phi_is_below_the_noise_inflated_plain_phi_on_real_frames(npy, rings):
    """Photon noise is not TTI and inflates the plain Phi; the split-half Phi removes it.

    The values are deterministic (fixed data): plain Phi 0.44-0.91, split-half -0.73-0.46 on
    these rings, so the margin 0.3 on the mean difference is not a matter of luck.
    """
    with open_frames(npy) as source:
        result = correlate(source, rings)
    plain, split = phi(result.C), phi(result.C_half_a, result.C_half_b)
    assert np.all(split < plain)
    assert np.mean(plain - split) > 0.3


def stationary_speckle(rng: np.random.Generator, T: int, n_pixels: int, tau: float,
                       nbar: float) -> np.ndarray:
    """Poisson counts of stationary speckle: complex AR(1) fields, correlation time tau frames."""
    a = np.exp(-1.0 / tau)
    E = np.empty((T, n_pixels), dtype=np.complex128)
    noise = (rng.normal(size=(T, n_pixels)) + 1j * rng.normal(size=(T, n_pixels))) / np.sqrt(2)
    E[0] = noise[0]
    for t in range(1, T):
        E[t] = a * E[t - 1] + np.sqrt(1 - a * a) * noise[t]
    return rng.poisson(nbar * np.abs(E) ** 2).astype(np.uint16)


def test_split_half_phi_is_near_zero_for_stationary_speckle(tmp_path):
    """Known answer: a time-translation-invariant process has Phi = 0.

    At 0.2 counts per pixel and frame on 1024 pixels photon noise lifts the plain Phi to about
    0.4; the split-half Phi has mean about 0 and spread 0.03 over seeds here, so it must fall
    within 0.1 of 0 (over 3 sigma) and well below the plain Phi.
    """
    T, side = 64, 32
    counts = stationary_speckle(np.random.default_rng(1), T, side * side, tau=24.0, nbar=0.2)
    path = tmp_path / "speckle.npy"
    np.save(path, counts.reshape(T, side, side))
    labels = np.ones((side, side), dtype=np.int64)
    with open_frames(path) as source:
        result = correlate(source, label_rois(labels))
    plain, split = phi(result.C)[0], phi(result.C_half_a, result.C_half_b)[0]
    assert plain > 0.3
    assert abs(split) < 0.1


# --- ROIs --------------------------------------------------------------------------------------


def test_q_map_matches_the_scattering_geometry():
    q = GEOMETRY.q_map(SHAPE)
    r = 40 * 108e-6  # 40 pixels from the centre along a row, in m
    expected = 4 * np.pi / 0.1546 * np.sin(np.arctan(r / 2.23) / 2)
    np.testing.assert_allclose(q[143, 163], expected, rtol=1e-12)
    np.testing.assert_allclose(q[103, 123], expected, rtol=1e-12)
    assert q[143, 123] == 0


def test_label_mask_rois_equal_q_ring_rois(npy, mask):
    q = GEOMETRY.q_map(SHAPE)
    labels = np.zeros(SHAPE, dtype=np.int32)
    for k, (lo, hi) in enumerate(RINGS, start=1):
        labels[(q >= lo) & (q < hi)] = 10 * k  # labels need not be consecutive
    by_label = label_rois(labels, mask, GEOMETRY)
    by_ring = [q_ring(GEOMETRY, SHAPE, lo, hi, mask) for lo, hi in RINGS]
    assert [r.name for r in by_label] == ["label10", "label20", "label30", "label40"]
    for a, b in zip(by_label, by_ring, strict=True):
        np.testing.assert_array_equal(a.pixels, b.pixels)
        assert a.q == pytest.approx(b.q)
    with open_frames(npy) as source:
        np.testing.assert_array_equal(correlate(source, by_label).C, correlate(source, by_ring).C)


def test_checkerboard_blocks_split_evenly():
    pixels = np.arange(64 * 64)
    for block in (1, 2, 4):
        half = checkerboard(pixels, (64, 64), block)
        assert half.sum() == pixels.size // 2
        assert half.reshape(64, 64)[0, block] and not half.reshape(64, 64)[0, block - 1]


def test_empty_ring_is_an_error():
    with pytest.raises(GbsbiError, match="empty"):
        q_ring(GEOMETRY, SHAPE, 5.0, 6.0)


# --- Eiger master files ------------------------------------------------------------------------


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-links"])
def test_eiger_blocks_are_concatenated_along_frames(tmp_path, npy, frames, rings, external):
    path = tmp_path / "scan_master.h5"
    write_eiger(path, frames, [30, 30, 40], external=external)
    with open_frames(path) as source:
        assert isinstance(source, EigerFrames) and source.shape == frames.shape
        np.testing.assert_array_equal(source.read_frames(0, 100, slice(50, 60), slice(3, 9)),
                                      frames[:, 50:60, 3:9])
        np.testing.assert_array_equal(source.read_frames(25, 65, slice(0, 256), slice(7, 8)),
                                      frames[25:65, :, 7:8])  # across two blocks
        from_h5 = correlate(source, rings, chunk_pixels=3000)
    with open_frames(npy) as source:
        from_npy = correlate(source, rings, chunk_pixels=3000)
    np.testing.assert_array_equal(from_h5.C, from_npy.C)


def test_eiger_metadata_are_read(tmp_path, frames):
    pixel_mask = np.zeros(SHAPE, dtype=np.uint32)
    pixel_mask[100:110, :] = 1
    path = tmp_path / "scan_master.h5"
    write_eiger(path, frames[:10], [10], metadata={
        "entry/instrument/detector/frame_time": (0.00130068, "s"),
        "entry/instrument/detector/detectorSpecific/pixel_mask": (pixel_mask, None),
        "entry/instrument/detector/beam_center_x": (123.0, "pixel"),
        "entry/instrument/detector/beam_center_y": (143.0, "pixel"),
        "entry/instrument/detector/x_pixel_size": (0.108, "mm"),
        "entry/instrument/detector/detector_distance": (2.23, "m"),
        "entry/instrument/beam/incident_wavelength": (1.546, "angstrom"),
        "entry/sample/temperature": (26.85, "degC"),
    })
    with open_frames(path) as source:
        info = source.info
    assert info.frame_time == pytest.approx(0.00130068)
    np.testing.assert_array_equal(info.valid, pixel_mask == 0)
    assert info.center == (143.0, 123.0)
    assert info.pixel_size == pytest.approx(108.0)
    assert info.distance == pytest.approx(2.23) and info.wavelength == pytest.approx(1.546)
    assert info.temperature == pytest.approx(300.0)


# --- command line ------------------------------------------------------------------------------


def test_cli_writes_a_maps_file_with_half_maps(tmp_path, npy, rings, capsys):
    out = tmp_path / "maps.h5"
    argv = ["correlate", str(npy), "--out", str(out), *GEOMETRY_FLAGS, "--temperature", "300",
            "--frame-time", "0.00130068", "--drop-frames", "5,60-61"]
    for lo, hi in RINGS:
        argv += ["--q-ring", str(lo), str(hi)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "Phi split-half" in stdout and all(r.name in stdout for r in rings)
    maps = read_maps(out)
    assert maps.C.shape == (4, 100, 100) and maps.C.dtype == np.float32
    np.testing.assert_allclose(maps.t[1], 0.00130068)
    np.testing.assert_array_equal(maps.temperature, 300.0)
    assert list(maps.scan) == [f"stack/{r.name}" for r in rings]
    with h5py.File(out) as f:
        assert f["C_half_a"].shape == f["C_half_b"].shape == (4, 100, 100)
        np.testing.assert_array_equal(np.flatnonzero(f["dropped"][()]), [5, 60, 61])
        # stored Phi comes from the float64 maps, the file keeps float32: rounding ~1e-7
        np.testing.assert_allclose(f["phi_split_half"][()],
                                   phi(f["C_half_a"][()], f["C_half_b"][()]), rtol=1e-5)
    assert np.isnan(maps.C[:, 5]).all() and np.isnan(maps.C[:, :, 61]).all()


def test_cli_takes_frame_time_mask_and_geometry_from_an_eiger_file(tmp_path, frames, capsys):
    path = tmp_path / "scan_master.h5"
    pixel_mask = np.zeros(SHAPE, dtype=np.uint32)
    pixel_mask[:, 123] = 1
    write_eiger(path, frames, [50, 50], metadata={
        "entry/instrument/detector/frame_time": (0.002, "s"),
        "entry/instrument/detector/detectorSpecific/pixel_mask": (pixel_mask, None),
        "entry/instrument/detector/beam_center_x": (123.0, None),
        "entry/instrument/detector/beam_center_y": (143.0, None),
        "entry/instrument/detector/x_pixel_size": (108e-6, "m"),
        "entry/instrument/detector/detector_distance": (2.23, "m"),
        "entry/instrument/beam/incident_wavelength": (1.546, "angstrom"),
    })
    labels = np.zeros(SHAPE, dtype=np.int64)
    labels[100:140, 100:140] = 1
    labels[150:190, 100:140] = 2
    np.save(tmp_path / "labels.npy", labels)
    out = tmp_path / "maps.h5"
    argv = ["correlate", str(path), "--out", str(out), "--labels", str(tmp_path / "labels.npy"),
            "--temperature", "350"]
    assert main(argv) == 0
    maps = read_maps(out)
    np.testing.assert_allclose(maps.t[-1], 99 * 0.002)
    with h5py.File(out) as f:
        assert f["n_pixels"][()].sum(axis=1).tolist() == [1600 - 40, 1600 - 40]
    q = GEOMETRY.q_map(SHAPE)
    assert maps.q[0] == pytest.approx(q[100:140, 100:140][:, [c != 23 for c in range(40)]].mean())


def _negative_stack(tmp_path: Path) -> list[str]:
    np.save(tmp_path / "neg.npy", np.full((4, 256, 256), -1, dtype=np.int32))
    return ["neg.npy", "--q-ring", "0.02", "0.03", *GEOMETRY_FLAGS, "--temperature", "300",
            "--frame-time", "1"]


def _foreign_h5(tmp_path: Path) -> list[str]:
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["something/else"] = np.zeros(3)
    return ["foreign.h5", "--q-ring", "0.02", "0.03", *GEOMETRY_FLAGS, "--temperature", "300"]


def _truncated_h5(tmp_path: Path) -> list[str]:
    frames = np.ones((4, 256, 256), dtype=np.uint16)
    write_eiger(tmp_path / "full.h5", frames, [4])
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    return ["cut.h5", "--q-ring", "0.02", "0.03", *GEOMETRY_FLAGS, "--temperature", "300",
            "--frame-time", "1"]


def _broken_link(tmp_path: Path) -> list[str]:
    write_eiger(tmp_path / "scan_master.h5", np.ones((4, 256, 256), np.uint16), [2, 2], True)
    (tmp_path / "scan_master_data_000002.h5").unlink()
    return ["scan_master.h5", "--q-ring", "0.02", "0.03", *GEOMETRY_FLAGS,
            "--temperature", "300", "--frame-time", "1"]


def _mask_shape(tmp_path: Path, npy: Path) -> list[str]:
    np.save(tmp_path / "mask.npy", np.ones((128, 256), dtype=bool))
    return [str(npy), "--mask", "mask.npy", "--q-ring", "0.02", "0.03", *GEOMETRY_FLAGS,
            "--temperature", "300", "--frame-time", "1"]


def _labels_shape(tmp_path: Path, npy: Path) -> list[str]:
    np.save(tmp_path / "labels.npy", np.ones((256, 255), dtype=np.int64))
    return [str(npy), "--labels", "labels.npy", *GEOMETRY_FLAGS, "--temperature", "300",
            "--frame-time", "1"]


BAD_INPUT = {
    "missing file": (lambda tmp, npy: ["nope.npy", "--q-ring", "0.02", "0.03"], "nope.npy"),
    "foreign hdf5": (lambda tmp, npy: _foreign_h5(tmp), "entry/data"),
    "truncated hdf5": (lambda tmp, npy: _truncated_h5(tmp), "cut.h5"),
    "broken external link": (lambda tmp, npy: _broken_link(tmp), "data_000002"),
    "mask shape": (_mask_shape, "(128, 256)"),
    "labels shape": (_labels_shape, "(256, 255)"),
    "empty ring": (lambda tmp, npy: [str(npy), "--q-ring", "5", "6", *GEOMETRY_FLAGS,
                                     "--temperature", "300", "--frame-time", "1"], "empty"),
    "negative counts": (lambda tmp, npy: _negative_stack(tmp), "negative counts"),
    "no frame time": (lambda tmp, npy: [str(npy), "--q-ring", "0.02", "0.03", *GEOMETRY_FLAGS,
                                        "--temperature", "300"], "--frame-time"),
    "no temperature": (lambda tmp, npy: [str(npy), "--q-ring", "0.02", "0.03",
                                         *GEOMETRY_FLAGS, "--frame-time", "1"], "--temperature"),
    "no geometry": (lambda tmp, npy: [str(npy), "--q-ring", "0.02", "0.03", "--temperature",
                                      "300", "--frame-time", "1"], "--pixel-size"),
    "bad drop list": (lambda tmp, npy: [str(npy), "--q-ring", "0.02", "0.03", *GEOMETRY_FLAGS,
                                        "--temperature", "300", "--frame-time", "1",
                                        "--drop-frames", "3,200"], "200"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_cli_bad_input_exits_2_with_one_line(case, in_tmp, npy, capsys):
    make, needle = BAD_INPUT[case]
    argv = make(in_tmp, npy)
    assert main(["correlate", argv[0], "--out", "maps.h5", *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gbsbi correlate: error: ") and err.count("\n") == 1
    assert needle in err
    assert "Traceback" not in err
    assert not (in_tmp / "maps.h5").exists()
    assert not list(in_tmp.glob(".maps.h5*"))


def test_frame_sources_reject_malformed_arrays(tmp_path):
    np.save(tmp_path / "two_d.npy", np.zeros((4, 4)))
    with pytest.raises(GbsbiError, match=r"\(T, rows, cols\)"):
        NpyFrames(tmp_path / "two_d.npy")
    (tmp_path / "junk.bin").write_bytes(b"not frames")
    with pytest.raises(GbsbiError, match="unknown frames format"):
        open_frames(tmp_path / "junk.bin")


def test_eiger_temperature_without_units_follows_the_one_rule(tmp_path, frames, capsys):
    """No units attribute: degC, as in APS files (gbsbi.io.units), with a note printed; an
    assumed length or time unit is noted too."""
    path = tmp_path / "scan_master.h5"
    write_eiger(path, frames[:10], [10], metadata={
        "entry/sample/temperature": (26.85, None),
        "entry/instrument/detector/frame_time": (0.002, None),
    })
    with open_frames(path) as source:
        assert source.info.temperature == pytest.approx(300.0)
        notes = " ".join(source.info.notes)
    assert "read as Celsius" in notes and "300.00 K" in notes
    assert "frame_time has no units attribute: read as s" in notes
    out = tmp_path / "maps.h5"
    assert main(["correlate", str(path), "--out", str(out), *GEOMETRY_FLAGS,
                 "--q-ring", "0.02", "0.03"]) == 0
    stdout = capsys.readouterr().out
    assert "entry/sample/temperature -> 300.00 K" in stdout and "read as Celsius" in stdout
    np.testing.assert_allclose(read_maps(out).temperature, 300.0)


def test_accumulators_of_one_roi_are_freed_before_the_next(tmp_path):
    """Memory follows one ROI: the float64 accumulators (a "set", 2 T^2 x 8 bytes) of an ROI
    are gone before the next ROI's are made (a stray reference once kept two sets alive: 3.6 GB
    instead of 2.1 GB at 10,000 frames). At T = 3,000 the traced peak over four ROIs is one set,
    one float32 map (0.25 set) and the normalisation's two 32 MiB row blocks (0.47 set), about
    1.74 sets; two sets alive at once would pass 2. Imports happen before tracing."""
    import tracemalloc

    from gbsbi.correlator import correlate_rois

    T, side = 3000, 24
    counts = np.random.default_rng(3).poisson(0.5, (T, side, side)).astype(np.uint16)
    np.save(tmp_path / "s.npy", counts)
    labels = np.zeros((side, side), dtype=np.int64)
    labels[:12, :12], labels[:12, 12:], labels[12:, :12], labels[12:, 12:] = 1, 2, 3, 4
    rois = label_rois(labels)
    with open_frames(tmp_path / "s.npy") as source:
        correlate(source, rois[:1], chunk_pixels=64)  # the lazy imports, before tracing
        tracemalloc.start()
        for result in correlate_rois(source, rois, chunk_pixels=64):
            for name in ("C_half_a", "C_half_b", "C"):
                result.map(name)
            del result
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 1.9 * (2 * T * T * 8)
