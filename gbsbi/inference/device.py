"""Where torch runs: the device (``--device auto|cpu|cuda``) and the CPU thread count."""

from __future__ import annotations

import os

import torch

from gbsbi.errors import GbsbiError

DEVICES = ("auto", "cpu", "cuda")


def cpu_threads() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure(device: str) -> torch.device:
    """Pick the device and set torch's threads to the usable cores.

    One intra-op thread per usable core is the fastest setting for the small networks here;
    more threads than cores (torch's default counts hyper-threads and ignores the affinity
    mask) slow every step down.

    Args:
        device: ``auto`` (CUDA when there is a GPU, else the CPU), ``cpu`` or ``cuda``.
    """
    if device not in DEVICES:
        raise GbsbiError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GbsbiError("--device cuda: no CUDA device is available; use --device auto or cpu")
    torch.set_num_threads(cpu_threads())
    return torch.device(device)
