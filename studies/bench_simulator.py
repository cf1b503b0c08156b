"""Benchmark: maps per second of the exact simulator against the Euler-Maruyama reference.

Measures, in one run on this machine, for the default configuration (128 frames):
- the exact per-mode simulator (:mod:`simulators.gb`), batched, maps only and maps + Phi;
- the reference (:mod:`simulators.reference`): Euler-Maruyama at 0.2 of the stability limit
  and per-pair phase averages, one map at a time, on parameter sets drawn from the prior;
- bank blocks simulated as measured (``--measurement fast`` and ``exact``, with every Phi
  variant), with the default physics (a polycrystal's boundaries, beam drift, dropped frames)
  and with the single boundary, against noiseless single-boundary bank blocks in the same run;
- the peak resident memory of ``gbsbi simulate --n N`` (default N = 100,000) in a child process,
  to show memory is bounded by the block size and not by N (its scratch bank goes to the
  system temp folder, so an interrupted run leaves nothing in the checkout).

Usage: python studies/bench_simulator.py [--n-exact 2000] [--n-reference 8] [--repeats 3]
       [--memory-n 100000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gbsbi.bank import BankSpec, simulate_block
from gbsbi.summaries.phi import phi
from simulators.config import (
    SINGLE_BOUNDARY,
    ExperimentConfig,
    MeasurementPrior,
    Prior,
    SamplePrior,
)
from simulators.gb import two_time_maps
from simulators.reference import reference_map


def time_exact(n: int, config: ExperimentConfig, prior: Prior) -> tuple[float, float]:
    """Maps per second for maps alone and for full bank blocks (maps + Phi)."""
    rng = np.random.default_rng(0)
    theta, temperature = prior.sample(n, rng)
    two_time_maps(theta[:64], temperature[:64], config, rng)  # warm-up
    start = time.perf_counter()
    for i in range(0, n, 256):
        two_time_maps(theta[i : i + 256], temperature[i : i + 256], config, rng)
    maps_only = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, n, 256):
        phi(two_time_maps(theta[i : i + 256], temperature[i : i + 256], config, rng))
    return maps_only, n / (time.perf_counter() - start)


def time_reference(n: int, config: ExperimentConfig, prior: Prior) -> float:
    rng = np.random.default_rng(1)
    theta, temperature = prior.sample(n, rng)
    start = time.perf_counter()
    for k in range(n):
        reference_map(theta[k], temperature[k], config, rng)
    return n / (time.perf_counter() - start)


#: The single boundary of length L, steady beam, no dropped frames: the model before
#: polycrystals and measurement drift.
SINGLE = SINGLE_BOUNDARY
STEADY = MeasurementPrior(drift=(0.0, 0.0), dropped=(0.0, 0.0))
#: The banks timed: (measurement, sample nuisances, measurement nuisances) by name.
BANKS = {
    "none": ("none", SINGLE, STEADY),
    "none-full": ("none", SamplePrior(), MeasurementPrior()),
    "fast-single": ("fast", SINGLE, STEADY),
    "fast": ("fast", SamplePrior(), MeasurementPrior()),
    "exact": ("exact", SamplePrior(), MeasurementPrior()),
}


def time_banks(n: int, modes: tuple[str, ...], config: ExperimentConfig, prior: Prior,
               repeats: int = 3) -> dict[str, float]:
    """Maps per second of bank blocks (simulation, measurement and every Phi variant), with
    one BLAS thread as `gbsbi simulate` runs them: the banks of :data:`BANKS` named in
    ``modes``, interleaved, the best of ``repeats`` rounds kept, so that a load that comes
    and goes on a shared machine touches every bank alike."""
    specs = {mode: BankSpec(config, prior, n, seed=0, block_size=min(n, 256),
                            measurement=BANKS[mode][0], sample=BANKS[mode][1],
                            nuisance=BANKS[mode][2])
             for mode in modes}
    best = dict.fromkeys(modes, np.inf)
    for spec in specs.values():
        simulate_block(spec, 0)  # warm-up
    for _ in range(repeats):
        for mode, spec in specs.items():
            start = time.perf_counter()
            for block in range(spec.n_blocks):
                simulate_block(spec, block)
            best[mode] = min(best[mode], time.perf_counter() - start)
    return {mode: n / seconds for mode, seconds in best.items()}


def peak_memory_of_bank(n: int) -> tuple[float, float]:
    """Peak RSS in MiB and wall time in s of ``gbsbi simulate --n n`` in a child process."""
    with tempfile.TemporaryDirectory() as tmp:  # the system temp folder, not the checkout
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "gbsbi", "simulate", "--n", str(n),
             "--out", str(Path(tmp) / "bank.h5")],
            check=True, stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-exact", type=int, default=2000)
    parser.add_argument("--n-reference", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds of the bank timings (the best is kept)")
    parser.add_argument("--memory-n", type=int, default=100_000,
                        help="bank size for the memory measurement (0 skips it)")
    args = parser.parse_args()
    config, prior = ExperimentConfig(), Prior()
    print(f"default configuration: {config.n_frames} frames, {config.n_x} grid points, "
          f"{config.n_modes} modes")
    exact, bank = time_exact(args.n_exact, config, prior)
    print(f"exact simulator:     {exact:10.1f} maps/s (maps only, batches of 256)")
    print(f"exact + Phi (bank):  {bank:10.1f} maps/s; {args.n_exact} maps in "
          f"{args.n_exact / bank:.2f} s")
    reference = time_reference(args.n_reference, config, prior)
    print(f"reference (EM):      {reference:10.3f} maps/s ({args.n_reference} maps)")
    print(f"ratio exact/reference: {exact / reference:,.0f}x "
          f"(bank with Phi: {bank / reference:,.0f}x)")
    rates = time_banks(args.n_exact, ("none", "none-full", "fast-single", "fast"), config, prior,
                       args.repeats)
    none, fast = rates["none"], rates["fast"]
    exact = time_banks(4, ("exact",), config, prior, 1)["exact"]
    print(f"bank, noiseless, one boundary:      {none:10.1f} maps/s (bank blocks, one BLAS "
          f"thread, best of {args.repeats} interleaved rounds)")
    print(f"bank, noiseless, full physics:      {rates['none-full']:10.1f} maps/s "
          f"({rates['none-full'] / none:.2f} of one boundary)")
    print(f"bank, fast noise, one boundary:     {rates['fast-single']:10.1f} maps/s "
          f"(fast/noiseless = {rates['fast-single'] / none:.2f})")
    print(f"bank, fast noise, full physics:     {fast:10.1f} maps/s (includes noiseless, plain "
          "and corrected Phi; boundaries, drift and dropped frames drawn per map)")
    print(f"measured full physics / noiseless one boundary: {fast / none:.2f}; / noiseless full "
          f"physics: {fast / rates['none-full']:.2f}")
    print(f"bank, exact noise:   {exact:10.2f} maps/s (N_pix and counts drawn from the "
          "measurement prior)")
    if args.memory_n:
        peak, wall = peak_memory_of_bank(args.memory_n)
        print(f"gbsbi simulate --n {args.memory_n}: peak RSS {peak:.0f} MiB, {wall:.0f} s wall "
              f"({args.memory_n / wall:.0f} maps/s end to end, including the HDF5 assembly)")


if __name__ == "__main__":
    main()
