"""Benchmark `gbsbi correlate` at scale: an Eiger file against the same frames as ``.npy``.

Writes one synthetic Poisson stack (T frames of side x side uint16 counts) twice in the system
temp folder (or --workdir): as a ``.npy`` stack and as an Eiger-layout master file with one
compressed chunk per frame (bitshuffle/LZ4 when hdf5plugin is installed, as real Eiger files;
else LZF). Then runs ``gbsbi correlate`` on each in a child process with four annular ROIs
covering the detector, and prints, per run, the wall time and the peak resident memory of the
child, and the ratio Eiger / npy measured in the same run (the reference). Before the one-pass
correlator every frame of the Eiger file was decompressed once per band of rows, and the bands
get narrower as T grows (a 256 MiB band holds 67,000 pixels at 400 frames, 2,700 at 10,000):
the default ``--chunk-pixels 4096`` gives a modest run the band count of a long one.

Memory does not depend on the number of pixels (the ROI pixels' counts stay in memory up to
512 MiB and go to a scratch file beyond), only on T: run ``--frames 10000 --side 128 --only
eiger --chunk-pixels 0`` for the 10,000-frame figure; ``--full`` is 10,000 frames of 1024 x
1024 (1 megapixel, 20 GB of counts: hours on two cores, and 40 GB of free disk).

Usage: python studies/bench_correlator_scale.py [--frames 400] [--side 512] [--full]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

RATE = 0.05  # mean counts per pixel per frame, as in a photon-limited XPCS measurement


def write_stacks(folder: Path, T: int, side: int, seed: int) -> tuple[Path, Path, Path]:
    """The same Poisson frames as a .npy stack and an Eiger master file; label mask of four
    rings. Written 64 frames at a time."""
    npy, eiger, labels = folder / "frames.npy", folder / "scan_master.h5", folder / "labels.npy"
    stack = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint16, shape=(T, side, side))
    if importlib.util.find_spec("hdf5plugin") is not None:
        import hdf5plugin

        compression = hdf5plugin.Bitshuffle()
    else:
        compression = {"compression": "lzf"}
    rng = np.random.default_rng(seed)
    with h5py.File(eiger, "w") as f:
        ds = f.create_dataset("entry/data/data_000001", (T, side, side), dtype=np.uint16,
                              chunks=(1, side, side), **compression)
        for t0 in range(0, T, 64):
            t1 = min(t0 + 64, T)
            block = rng.poisson(RATE, size=(t1 - t0, side, side)).astype(np.uint16)
            stack[t0:t1] = block
            ds[t0:t1] = block
    stack.flush()
    del stack
    rows, cols = np.indices((side, side))
    radius = np.hypot(rows - side / 2, cols - side / 2) / (side / 2)
    np.save(labels, np.digitize(radius, [0.1, 0.3, 0.5, 0.7, 0.9]).astype(np.int64) % 5)
    return npy, eiger, labels


def run(frames: Path, labels: Path, out: Path, scratch: Path,
        chunk: int | None) -> tuple[float, float]:
    """Wall time in s and peak RSS in MiB of `gbsbi correlate` on ``frames``, in a child."""
    cmd = [sys.executable, "-m", "gbsbi", "correlate", str(frames), "--out", str(out),
           "--labels", str(labels), "--center", "0", "0", "--pixel-size", "75", "--distance",
           "5", "--wavelength", "1", "--temperature", "300", "--frame-time", "1"]
    if chunk:
        cmd += ["--chunk-pixels", str(chunk)]
    if "--scratch" in subprocess.run(cmd[:4] + ["--help"], capture_output=True,
                                     text=True).stdout:
        cmd += ["--scratch", str(scratch)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"gbsbi correlate failed on {frames}: {proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400, help="frames T (default 400)")
    parser.add_argument("--side", type=int, default=512, help="detector rows = cols (512)")
    parser.add_argument("--full", action="store_true", help="10,000 frames of 1024 x 1024")
    parser.add_argument("--only", choices=("npy", "eiger"), help="run one of the two")
    parser.add_argument("--chunk-pixels", type=int, default=4096,
                        help="pixels per band (default 4096, about the automatic band of a "
                        "6,000-frame run; 0: automatic, one band per 256 MiB)")
    parser.add_argument("--workdir", type=Path, help="folder for the stacks (default: $TMPDIR)")
    args = parser.parse_args()
    T, side = (10_000, 1024) if args.full else (args.frames, args.side)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        npy, eiger, labels = write_stacks(folder, T, side, seed=0)
        print(f"{T} frames of {side}x{side} uint16 at {RATE} counts/pixel/frame, four ring "
              f"ROIs; stacks written in {time.perf_counter() - start:.0f} s "
              f"(.npy {npy.stat().st_size / 2**20:.0f} MiB, Eiger "
              f"{eiger.stat().st_size / 2**20:.0f} MiB); {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}; --chunk-pixels {args.chunk_pixels or 'auto'}")
        results = {}
        for name, frames in (("npy", npy), ("eiger", eiger)):
            if args.only in (None, name):
                results[name] = run(frames, labels, folder / f"{name}.h5", folder,
                                    args.chunk_pixels)
                wall, rss = results[name]
                print(f"  gbsbi correlate {name:5s}: {wall:7.1f} s, peak RSS {rss:7.0f} MiB")
        if len(results) == 2:
            print(f"  Eiger / npy time: {results['eiger'][0] / results['npy'][0]:.2f} "
                  "(reference: the .npy stack in this run)")
        accumulators = 2 * T * T * 8 / 2**20
        chunk = args.chunk_pixels or 256 * 2**20 // (T * 10)
        print(f"  memory model: two float64 T x T accumulators {accumulators:.0f} MiB + one "
              f"float32 map {T * T * 4 / 2**20:.0f} MiB + band T x {chunk} px x 10 B "
              f"{T * chunk * 10 / 2**20:.0f} MiB + store <= 512 MiB")


if __name__ == "__main__":
    main()
