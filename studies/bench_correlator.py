"""Benchmark the chunked two-time correlator: speed against references, memory against chunk size.

1. Speed, on the real speckle stack of tests/data (100 frames, 256 x 256, four q-rings): frames/s
   of ``gbsbi.correlator.correlate`` and, in the same run on the same ROIs, of scikit-beam's
   ``two_time_corr`` (when installed) and of a direct per-pixel loop; the ratios; and the largest
   relative difference between them (must be below 1e-6).
2. Memory, on a synthetic Poisson stack written to disk and streamed through ``np.memmap``
   (default 2,000 frames of 512 x 512 uint16, 1 GiB): peak traced allocation (tracemalloc, which
   sees every NumPy buffer but not the file pages of the memory map) for several chunk sizes,
   against the stack's size. Memory follows the chunk, the accumulators of one ROI and the
   ROI pixels' store (in memory up to 512 MiB), not the stack;
   ``studies/bench_correlator_scale.py`` measures ``gbsbi correlate`` itself.

Run: ``python studies/bench_correlator.py [--frames 2000 --side 512 --chunks 4096 65536]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gbsbi.correlator import Geometry, Roi, correlate, label_rois, open_frames, q_ring

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
STACK = DATA / "skbeam_speckle_frames_100x256x256.npy.zip"
GEOMETRY = Geometry(center=(143.0, 123.0), pixel_size=108.0, distance=2.23, wavelength=1.546)
RINGS = [(0.01, 0.02), (0.02, 0.03), (0.03, 0.04), (0.04, 0.06)]  # nm^-1


def per_pixel_loop(frames: np.ndarray, rois: list[Roi]) -> np.ndarray:
    """Reference: C = N sum_p n_p n_p^T / (S S^T), one pixel at a time, shape (n, T, T)."""
    T = frames.shape[0]
    flat = frames.reshape(T, -1)
    out = np.empty((len(rois), T, T))
    for k, roi in enumerate(rois):
        G, S = np.zeros((T, T)), np.zeros(T)
        for p in roi.pixels:
            n_p = flat[:, p].astype(np.float64)
            G += np.outer(n_p, n_p)
            S += n_p
        out[k] = roi.pixels.size * G / np.outer(S, S)
    return out


def best_time(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    """The fastest of ``repeats`` calls in s, and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def speed(repeats: int, workdir: Path) -> None:
    with zipfile.ZipFile(STACK) as z, z.open("img_stack5301_5401.npy") as f:
        frames = np.load(f)
    path = workdir / "real.npy"
    np.save(path, frames)
    T = frames.shape[0]
    mask = frames.sum(axis=0) > 0
    rois = [q_ring(GEOMETRY, frames.shape[1:], lo, hi, mask) for lo, hi in RINGS]
    n_pix = sum(r.pixels.size for r in rois)
    print(f"real stack: {T} frames of {frames.shape[1]}x{frames.shape[2]}, {len(rois)} q-rings, "
          f"{n_pix} pixels; best of {repeats}")
    threads = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "unset"))
    print(f"  {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, BLAS threads "
          f"{threads} (small products on a loaded machine: set OPENBLAS_NUM_THREADS=1)")

    def ours() -> np.ndarray:
        with open_frames(path) as source:
            return correlate(source, rois).C

    t_ours, C = best_time(ours, repeats)
    rows = [("gbsbi correlate (chunked Gram)", t_ours, 0.0)]  # the baseline of the ratios
    t_loop, C_loop = best_time(lambda: per_pixel_loop(frames, rois), repeats)
    rows.append(("direct per-pixel loop", t_loop, np.max(np.abs(C / C_loop - 1))))
    try:
        from skbeam.core.correlation import two_time_corr
    except ImportError:
        print("  scikit-beam not installed: its two_time_corr is skipped")
    else:
        labels = np.zeros(frames.shape[1:], dtype=np.int64)
        for k, roi in enumerate(rois, start=1):
            labels.flat[roi.pixels] = k
        t_sk, C_sk = best_time(lambda: two_time_corr(labels, frames, T, T + T % 2, 1).g2,
                               repeats)
        rows.append(("scikit-beam two_time_corr", t_sk, np.max(np.abs(C / C_sk - 1))))
    for name, seconds, diff in rows:
        versus = (f"gbsbi is {seconds / t_ours:6.1f}x faster, max rel diff {diff:.1e}"
                  if seconds != t_ours else "")
        print(f"  {name:32s} {T / seconds:10.0f} frames/s  {seconds * 1e3:8.1f} ms  {versus}")


def write_synthetic(path: Path, T: int, side: int, rate: float, seed: int) -> None:
    """A Poisson(rate) uint16 stack (T, side, side) on disk, written 64 frames at a time."""
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(T, side, side))
    rng = np.random.default_rng(seed)
    for t0 in range(0, T, 64):
        t1 = min(t0 + 64, T)
        stack[t0:t1] = rng.poisson(rate, size=(t1 - t0, side, side))
    stack.flush()
    del stack


def memory(T: int, side: int, chunks: list[int], workdir: Path) -> None:
    path = workdir / "synthetic.npy"
    start = time.perf_counter()
    write_synthetic(path, T, side, rate=0.5, seed=0)
    print(f"\nsynthetic stack: {T} frames of {side}x{side} uint16 on disk "
          f"({path.stat().st_size / 2**20:.0f} MiB, float64 would be "
          f"{T * side * side * 8 / 2**20:.0f} MiB), written in {time.perf_counter() - start:.1f} s")
    rows, cols = np.indices((side, side))
    radius = np.hypot(rows - side / 2, cols - side / 2)
    labels = ((radius >= side / 8) & (radius < side / 4)).astype(np.int64)  # one ring ROI
    rois = label_rois(labels)
    n_pix = rois[0].pixels.size
    # G_a, G_b of the ROI being correlated; correlate() keeps its three float32 maps per ROI;
    # the ROI pixels' counts in memory (uint16)
    accumulators = 2 * T * T * 8 + 3 * len(rois) * T * T * 4 + n_pix * T * 2
    print(f"  ring ROI of {n_pix} pixels; accumulators, maps and pixel store "
          f"{accumulators / 2**20:.0f} MiB")
    for chunk in chunks:
        tracemalloc.start()
        start = time.perf_counter()
        with open_frames(path) as source:
            correlate(source, rois, chunk_pixels=chunk)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        bound = accumulators + T * chunk * (2 + 8)  # uint16 band and a float64 copy
        print(f"  chunk {chunk:8d} px: peak traced {peak / 2**20:6.0f} MiB, "
              f"bound accumulators + T x chunk x 10 B = {bound / 2**20:6.0f} MiB; "
              f"{T / seconds:6.0f} frames/s ({seconds:.1f} s)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  process peak RSS {rss:.0f} MiB (includes file pages of the memory map)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best is kept)")
    parser.add_argument("--frames", type=int, default=2000, help="synthetic stack: frames T")
    parser.add_argument("--side", type=int, default=512, help="synthetic stack: rows = cols")
    parser.add_argument("--chunks", type=int, nargs="+", default=[4096, 65536],
                        help="chunk sizes in pixels for the memory run")
    parser.add_argument("--no-memory", action="store_true", help="skip the synthetic run")
    parser.add_argument("--workdir", type=Path, help="folder for the temporary stacks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        speed(args.repeats, Path(tmp))
        if not args.no_memory:
            memory(args.frames, args.side, args.chunks, Path(tmp))


if __name__ == "__main__":
    main()
