"""Benchmark: the time of one group posterior (`gbsbi group --law arrhenius --shared sigma,c`)
against the sampler it replaced, on the same groups, in one run.

Groups of ``--scans`` scans at temperatures uniform in [300, 500] K, their (D_ref, Ea, sigma,
c) drawn from the group prior and their maps simulated as the model's bank was (the functions
of studies/group_calibration.py). Each group is sampled twice with the same per-scan
likelihoods (:func:`gbsbi.inference.npe.likelihood.scan_log_likelihood`):

- gbsbi: :func:`gbsbi.group.sample.sample_group` with its defaults (differential-evolution
  moves in the unbounded coordinates of :meth:`GroupModel.from_box`, stopped by bulk ESS and
  R-hat);
- reference: the sampler before it: emcee's stretch move on the group's unit coordinates, run
  until the chain is 30 autocorrelation times long with tau settled to 5 %, checked every 200
  steps, 32 walkers.

Prints each group's seconds, steps, largest R-hat and the 5 / 50 / 95 % quantiles of Ea from
both (the same posterior), then the median time of each and the line ``reference/gbsbi time:
R``. Before the groups, the time of one likelihood call (16 walkers, the first group's scans:
what each of the sampler's calls evaluates) with the members in one pass and member by
member (:func:`scan_log_likelihood`'s ``one_pass``), the median of 5 rounds of 100 calls.
ArviZ's import and first use, paid once per process by ``gbsbi group`` and by both samplers,
is timed apart before the groups. Torch uses ``--threads`` threads (default 1: run
it pinned with taskset, or on an idle machine with 2).

Usage: python studies/bench_group.py --model MODEL_DIR [--groups 3] [--scans 8] [--seed 0]
       [--members K]
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from group_calibration import draw_group, simulate  # noqa: E402

from gbsbi.group.config import GroupPrior, GroupSettings  # noqa: E402
from gbsbi.group.sample import sample_group  # noqa: E402
from gbsbi.inference.inputs import network_inputs  # noqa: E402
from gbsbi.inference.model import load_model  # noqa: E402
from gbsbi.inference.npe.likelihood import scan_log_likelihood  # noqa: E402
from gbsbi.validation.crosscheck import EmceeConfig, chain_diagnostics, run_emcee  # noqa: E402


def reference(law, log_likelihood, seed: int) -> tuple[np.ndarray, float, int, float]:  # noqa: ANN001
    """The stretch move on the unit coordinates: draws of z, seconds, steps, largest R-hat."""
    def log_prob(z: np.ndarray) -> np.ndarray:
        inside = law.inside(z)
        out = np.full(len(z), -np.inf)
        if inside.any():
            out[inside] = log_likelihood(law.unit(z[inside])).sum(axis=1)
        return out

    rng = np.random.default_rng(seed)
    candidates = rng.random((50 * 32, law.dim))
    values = log_prob(candidates)
    start = candidates[np.argsort(np.where(np.isfinite(values), values, -np.inf))[::-1][:32]]
    config = EmceeConfig(walkers=32, check_every=200, max_steps=6000, tau_factor=30.0,
                         tau_change=0.05)
    began = time.perf_counter()
    result = run_emcee(log_prob, start, config, seed, tuple(f"z{k}" for k in range(law.dim)))
    return (result.samples.reshape(-1, law.dim), time.perf_counter() - began, result.steps,
            float(result.rhat.max()))


def time_calls(model, scans: int, members: int, rng: np.random.Generator) -> None:  # noqa: ANN001
    """Prints the milliseconds of one likelihood call, members in one pass and one by one."""
    group = draw_group(model, GroupPrior(), rng, scans=scans)
    x = network_inputs(simulate(model, group, rng), group["temperature"], model.spec.inputs)
    u = rng.random((16, scans, 3))
    ms = {}
    for one_pass in (True, False):
        log_likelihood = scan_log_likelihood(model, x, members, one_pass=one_pass)
        log_likelihood(u)
        rounds = timeit.repeat(lambda: log_likelihood(u), number=100, repeat=5)  # noqa: B023
        ms[one_pass] = float(np.median(rounds)) * 10  # seconds per 100 calls -> ms per call
    print(f"one likelihood call (16 walkers, {scans} scans): {ms[True]:.1f} ms in one pass, "
          f"{ms[False]:.1f} ms member by member (ratio {ms[False] / ms[True]:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--scans", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--members", type=int, default=0,
                        help="the first K members of an ensemble in the likelihood (0: all)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rng = np.random.default_rng(args.seed)
    # Both samplers check convergence with ArviZ, whose import and first call (numba's
    # compilation) cost seconds once per process: paid here, before either is timed, or the
    # first group's gbsbi run would carry it and the reference after it would not.
    began = time.perf_counter()
    chain_diagnostics(rng.normal(size=(8, 50, 2)))
    print(f"ArviZ's import and first diagnostics: {time.perf_counter() - began:.1f} s, once per "
          "process (not in the times below)", flush=True)
    times = {"gbsbi": [], "reference": []}
    settings = GroupSettings(seed=args.seed, members=args.members)
    time_calls(model, args.scans, settings.members, np.random.default_rng(args.seed))
    for g in range(args.groups):
        group = draw_group(model, GroupPrior(), rng, scans=args.scans)
        x = network_inputs(simulate(model, group, rng), group["temperature"],
                           model.spec.inputs)
        law, log_likelihood = group["law"], scan_log_likelihood(model, x, settings.members)
        began = time.perf_counter()
        draws = sample_group(law, log_likelihood, settings)
        times["gbsbi"].append(time.perf_counter() - began)
        z_ref, seconds, steps, rhat = reference(law, log_likelihood, args.seed)
        times["reference"].append(seconds)
        for name, z, s, n, r in (("gbsbi", draws.z.reshape(-1, law.dim), times["gbsbi"][-1],
                                  draws.steps, float(draws.rhat.max())),
                                 ("reference", z_ref, seconds, steps, rhat)):
            ea = law.physical(z)["Ea"]
            print(f"group {g + 1} ({args.scans} scans) {name:>9}: {s:5.1f} s, {n:5d} steps, "
                  f"R-hat {r:.3f}, Ea 5/50/95 % "
                  + " / ".join(f"{v:.3f}" for v in np.quantile(ea, [0.05, 0.5, 0.95])),
                  flush=True)
    median = {k: float(np.median(v)) for k, v in times.items()}
    print(f"median time per group of {args.scans} scans: gbsbi {median['gbsbi']:.1f} s, "
          f"reference {median['reference']:.1f} s ({args.threads} torch thread(s))")
    print(f"reference/gbsbi time: {median['reference'] / median['gbsbi']:.2f}")


if __name__ == "__main__":
    main()
