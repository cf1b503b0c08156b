"""Benchmark: training throughput and validation NLL of gbsbi's posterior estimator against
sbi's default CNNEmbedding + NSF, on the same bank of 128-frame measured maps, in one run.

Both learn q(u | x) for u in the unit cube, on the same training maps, and are scored by the
NLL of the same held-out maps. Each trains for the same wall-clock budget:
- reference: ``sbi.neural_nets.embedding_nets.CNNEmbedding(input_shape=(128, 128))`` with
  ``posterior_nn("nsf")``, trained by sbi's own ``NPE.train`` (its defaults: batch 200,
  learning rate 5e-4, z-scored x) on the raw 128 x 128 maps, one epoch at a time until the
  budget is spent;
- gbsbi: the reduced inputs (:mod:`gbsbi.inference.inputs`), the map embedding and NSF,
  trained by :func:`gbsbi.inference.npe.train.train` for the same budget (early stopping off).
The reduction of the maps to network inputs happens once per bank; its rate is reported on
its own and amortised over the epochs gbsbi ran. Also timed: 10,000 posterior draws for one
scan. Torch runs on the usable cores (``gbsbi.inference.device.configure``).

With ``--compete`` it measures instead what a busy machine leaves of gbsbi's throughput: the
same training for the same budget, idle and beside a competing CPU-bound process it starts
itself (``--competitor train``: another `gbsbi train`; ``simulate``: `gbsbi simulate --workers
1`), with the thread policy of `gbsbi train` (:class:`gbsbi.inference.device.ThreadPolicy`),
and idle also with every usable core fixed (the setting before the policy), all in one run; it
ends with the line ``competing/idle throughput: R``. With ``--demo`` as well it times `gbsbi
demo` end to end instead, idle and beside the competitor, and ends with ``competing/idle
throughput (demo end to end): R``, R the ratio of the idle to the busy wall time. The
training figures use banks without window ages (FRESH), as when they were first measured.

Usage: python studies/bench_training.py [--n 8000] [--budget 120]
       python studies/bench_training.py --compete [--competitor train|simulate] [--budget 60]
       python studies/bench_training.py --compete --demo [--competitor train|simulate]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import torch
from sbi.inference import NPE
from sbi.neural_nets import posterior_nn
from sbi.neural_nets.embedding_nets import CNNEmbedding

from gbsbi.bank import BankSpec, simulate_bank
from gbsbi.inference.config import Architecture, SurrogateConfig, TrainConfig
from gbsbi.inference.data import bank_inputs
from gbsbi.inference.device import ThreadPolicy, configure, cpu_threads
from gbsbi.inference.flow import parts, unit_box
from gbsbi.inference.inputs import InputConfig
from gbsbi.inference.loop import TrainingSet
from gbsbi.inference.model import TrainedModel, build_networks
from gbsbi.inference.npe.config import NpeConfig
from gbsbi.inference.npe.predict import GbPosterior
from gbsbi.inference.npe.train import train
from gbsbi.inference.spec import ModelSpec
from simulators.config import FRESH, STATIONARY, ExperimentConfig, MeasurementPrior


def reference(x: torch.Tensor, u: torch.Tensor, x_val: torch.Tensor, u_val: torch.Tensor,
              budget: float) -> dict:
    """sbi's CNNEmbedding + NSF trained by NPE.train until the budget is spent."""
    torch.manual_seed(0)
    # sbi lists every outlying pixel of the raw maps (16,000 indices) and warns at each epoch
    # that one epoch has not converged; neither says anything about the comparison.
    warnings.filterwarnings("ignore", message="Data has extreme outliers")
    warnings.filterwarnings("ignore", message="Maximum number of epochs")
    builder = posterior_nn("nsf", embedding_net=CNNEmbedding(input_shape=(128, 128)))
    inference = NPE(prior=unit_box(), density_estimator=builder, show_progress_bars=False)
    inference.append_simulations(u, x)
    spent, epochs = 0.0, 0
    while spent < budget:
        epochs += 1
        estimator = inference.train(max_num_epochs=epochs, resume_training=epochs > 1,
                                    stop_after_epochs=10**6)
        spent = float(sum(inference._summary["epoch_durations_sec"]))
    n_fit = int(round(len(x) * 0.9))
    with torch.no_grad():
        estimator.eval()
        nll = -torch.cat([estimator.log_prob(u_val[i:i + 250], x_val[i:i + 250])
                          for i in range(0, len(x_val), 250)]).mean()
    return {"epochs": epochs, "seconds": spent, "maps_per_s": epochs * n_fit / spent,
            "val_nll": float(nll)}


def ours(x: torch.Tensor, u: torch.Tensor, x_val: torch.Tensor, u_val: torch.Tensor,
         budget: float, setup, threads: ThreadPolicy | None = None,  # noqa: ANN001
         ) -> tuple[dict, torch.nn.Module, ModelSpec]:
    architecture = Architecture()
    inputs = InputConfig(architecture.bins, architecture.grading, setup.prior.temperature)
    config = TrainConfig(epochs=10**6, patience=10**6, seed=0)
    spec = ModelSpec(setup.config, setup.prior, setup.nuisance, inputs, architecture.embedding,
                     SurrogateConfig(), config, NpeConfig())
    torch.manual_seed(0)
    flow, _ = build_networks(spec, u, x[:2])
    parts(flow).embedding.set_standardisation(x.mean(0), x.std(0))
    history = train(flow, TrainingSet(x, u), config, max_seconds=budget, threads=threads)
    with torch.no_grad():
        nll = -torch.cat([flow.log_prob(u_val[i:i + 1000], x_val[i:i + 1000])
                          for i in range(0, len(x_val), 1000)]).mean()
    seconds = sum(r["seconds"] for r in history)
    n_fit = int(round(len(x) * 0.9))
    return ({"epochs": len(history), "seconds": seconds,
             "maps_per_s": len(history) * n_fit / seconds, "val_nll": float(nll)}, flow, spec)


def competitor(kind: str, bank: Path, folder: Path):  # noqa: ANN201 - a Popen
    """Start the competing process: another `gbsbi train` on the same bank, or `gbsbi
    simulate --workers 1` of a large bank."""
    import subprocess
    import sys

    if kind == "train":
        argv = ["train", str(bank), "--out", str(folder / "rival"), "--epochs", "100000",
                "--patience", "100000", "--no-cache"]
    else:
        argv = ["simulate", "--n", "10000000", "--measurement", "fast", "--workers", "1",
                "--out", str(folder / "rival.h5")]
    return subprocess.Popen([sys.executable, "-m", "gbsbi", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def compete(args: argparse.Namespace) -> None:
    """Throughput idle (adaptive threads, and every core fixed) and beside a competitor."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.h5"
        spec = BankSpec(ExperimentConfig(), FRESH, args.n + args.n_val, 21, measurement="fast",
                        sample=STATIONARY, nuisance=MeasurementPrior())
        simulate_bank(path, spec, workers=2)
        data = bank_inputs(path, InputConfig(temperature=FRESH.temperature))
        x, u, n = torch.as_tensor(data.x), torch.as_tensor(data.u), args.n
        fixed = ours(x[:n], u[:n], x[n:], u[n:], args.budget, data.setup,
                     ThreadPolicy(cpu_threads()))[0]
        idle = ours(x[:n], u[:n], x[n:], u[n:], args.budget, data.setup, ThreadPolicy())[0]
        rival = competitor(args.competitor, path, Path(tmp))
        try:
            time.sleep(20)  # the rival loads its bank and gets going
            busy = ours(x[:n], u[:n], x[n:], u[n:], args.budget, data.setup, ThreadPolicy())[0]
        finally:
            rival.kill()
            rival.wait()
    print(f"{cpu_threads()} usable cores; budget {args.budget:g} s per run; competitor: "
          f"gbsbi {args.competitor}")
    print(f"idle, every core fixed (before):  {fixed['maps_per_s']:8.0f} maps/s")
    print(f"idle, adaptive threads:           {idle['maps_per_s']:8.0f} maps/s "
          f"({idle['maps_per_s'] / fixed['maps_per_s']:.2f} of fixed)")
    print(f"beside the competitor:            {busy['maps_per_s']:8.0f} maps/s")
    print(f"competing/idle throughput: {busy['maps_per_s'] / idle['maps_per_s']:.2f}")


def compete_demo(args: argparse.Namespace) -> None:
    """`gbsbi demo` end to end, idle and beside a competitor: the ratio of wall times."""
    import subprocess
    import sys

    def demo(out: Path) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gbsbi", "demo", "--out", str(out)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.h5"
        if args.competitor == "train":
            simulate_bank(path, BankSpec(ExperimentConfig(), FRESH, args.n, 21,
                                         measurement="fast", sample=STATIONARY,
                                         nuisance=MeasurementPrior()),
                          workers=2)
        idle = demo(Path(tmp) / "idle")
        rival = competitor(args.competitor, path, Path(tmp))
        try:
            time.sleep(20)  # the rival loads its bank and gets going
            busy = demo(Path(tmp) / "busy")
        finally:
            rival.kill()
            rival.wait()
    print(f"{cpu_threads()} usable cores; competitor: gbsbi {args.competitor}")
    print(f"gbsbi demo idle: {idle:.0f} s; beside the competitor: {busy:.0f} s")
    print(f"competing/idle throughput (demo end to end): {idle / busy:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8000, help="maps in the bank (default 8000)")
    parser.add_argument("--n-val", type=int, default=1000, help="held-out maps (default 1000)")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="training seconds for each model (default 120)")
    parser.add_argument("--compete", action="store_true",
                        help="throughput beside a competing process against idle")
    parser.add_argument("--competitor", choices=("train", "simulate"), default="train")
    parser.add_argument("--demo", action="store_true",
                        help="with --compete: time `gbsbi demo` end to end instead of training")
    args = parser.parse_args()
    if args.compete:
        return compete_demo(args) if args.demo else compete(args)
    configure("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"({cpu_threads()} usable cores)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.h5"
        spec = BankSpec(ExperimentConfig(), FRESH, args.n + args.n_val, 21, measurement="fast",
                        sample=STATIONARY, nuisance=MeasurementPrior())
        simulate_bank(path, spec, workers=2)
        start = time.perf_counter()
        data = bank_inputs(path, InputConfig(temperature=FRESH.temperature))
        reduce_rate = len(data.x) / (time.perf_counter() - start)
        with h5py.File(path, "r") as f:
            maps = torch.as_tensor(f["C"][()])
    u = torch.as_tensor(data.u)
    n = args.n
    ref = reference(maps[:n], u[:n], maps[n:], u[n:], args.budget)
    del maps
    x = torch.as_tensor(data.x)
    mine, flow, model_spec = ours(x[:n], u[:n], x[n:], u[n:], args.budget, data.setup)
    amortised = 1 / (1 / mine["maps_per_s"] + 1 / (reduce_rate * mine["epochs"]))
    from gbsbi.inference.surrogate import PhiSurrogate

    posterior = GbPosterior(TrainedModel(model_spec, flow.eval(), PhiSurrogate(), {}))
    posterior.sample((100,), x=x[n])
    start = time.perf_counter()
    posterior.sample((10_000,), x=x[n])
    draw_seconds = time.perf_counter() - start

    print(f"bank: {n} training maps, {args.n_val} held out, 128 frames; budget {args.budget:g} s")
    print(f"{'model':<34} {'epochs':>6} {'maps/s':>8} {'val NLL':>8}")
    print(f"{'sbi CNNEmbedding + NSF (128x128)':<34} {ref['epochs']:>6} "
          f"{ref['maps_per_s']:>8.0f} {ref['val_nll']:>8.3f}")
    print(f"{'gbsbi reduced inputs + NSF':<34} {mine['epochs']:>6} "
          f"{mine['maps_per_s']:>8.0f} {mine['val_nll']:>8.3f}")
    print(f"throughput ratio gbsbi / reference: {mine['maps_per_s'] / ref['maps_per_s']:.1f}x "
          f"(target >= 5x); with the reduction amortised over {mine['epochs']} epochs: "
          f"{amortised / ref['maps_per_s']:.1f}x")
    print(f"input reduction: {reduce_rate:.0f} maps/s, once per bank")
    print(f"validation NLL: gbsbi {mine['val_nll']:.3f} vs reference {ref['val_nll']:.3f} "
          f"({'equal or better' if mine['val_nll'] <= ref['val_nll'] else 'WORSE'})")
    print(f"10,000 posterior draws for one scan: {draw_seconds:.2f} s (target <= 1 s)")


if __name__ == "__main__":
    main()
