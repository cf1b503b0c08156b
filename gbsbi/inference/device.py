"""Where torch runs: the device (``--device auto|cpu|cuda``) and the CPU thread count.

Threads on a shared machine. torch's intra-op pool is OpenMP; waiting threads spin, and with
another CPU-bound process on the cores a spinning pool slows every step many times over (150
instead of 4,000 maps/s on 2 cores beside one other process). Two things stop that:
``OMP_WAIT_POLICY=PASSIVE`` (set in :mod:`gbsbi.inference` before torch loads, unless the
user set it), and a pool no larger than the cores other processes leave free:
:class:`ThreadPolicy` measures, between epochs, how much CPU the rest of the machine used since
the last look (``/proc/stat`` less this process's own time) and sets the thread count to the
usable cores minus that, at least one. ``--threads N`` fixes the count instead.
"""

from __future__ import annotations

import os
import time

import torch

from gbsbi.errors import GbsbiError

DEVICES = ("auto", "cpu", "cuda")


def cpu_threads() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _busy_seconds() -> tuple[float, float] | None:
    """CPU seconds spent by the whole machine and by this process so far, or None where
    /proc is not there."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in fields]
    busy = sum(values) - values[3] - (values[4] if len(values) > 4 else 0)  # less idle, iowait
    return busy / tick, (int(own[11]) + int(own[12])) / tick  # utime + stime


class ThreadPolicy:
    """torch's thread count: ``fixed``, or the usable cores less what other processes use.

    Args:
        fixed: a thread count to keep (``--threads``), or None to adapt.
    """

    def __init__(self, fixed: int | None = None) -> None:
        if fixed is not None and fixed < 1:
            raise GbsbiError(f"--threads must be at least 1, got {fixed}")
        self.fixed = fixed
        self.usable = cpu_threads()
        self.last = (time.monotonic(), _busy_seconds())

    def others(self) -> float:
        """Cores other processes kept busy since the last look (0 where unknown)."""
        now, busy = time.monotonic(), _busy_seconds()
        (then, before), self.last = self.last, (now, busy)
        if busy is None or before is None or now - then < 0.5:
            return 0.0
        total, own = busy[0] - before[0], busy[1] - before[1]
        return max(0.0, (total - own) / (now - then))

    def update(self) -> int:
        """Set torch's intra-op threads for the next stretch of work; returns the count."""
        if self.fixed is not None:
            count = self.fixed
        else:
            count = max(1, min(self.usable, int(round(self.usable - self.others()))))
        if count != torch.get_num_threads():
            torch.set_num_threads(count)
        return count


def configure(device: str, threads: int | None = None,
              policy: ThreadPolicy | None = None) -> torch.device:
    """Pick the device and set torch's threads (:class:`ThreadPolicy`: ``threads``, or the
    cores the rest of the machine leaves free over the last moment).

    One intra-op thread per free core is the fastest setting for the small networks here;
    more threads than free cores (torch's default counts hyper-threads and ignores the
    affinity mask and other processes) slow every step down.

    Args:
        device: ``auto`` (CUDA when there is a GPU, else the CPU), ``cpu`` or ``cuda``.
        threads: a fixed thread count, or None to adapt.
        policy: the policy to start (a training run keeps it and updates it every epoch);
            None for a new one.
    """
    if device not in DEVICES:
        raise GbsbiError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GbsbiError("--device cuda: no CUDA device is available; use --device auto or cpu")
    policy = policy or ThreadPolicy(threads)
    time.sleep(0.5)  # a first look at what else runs
    policy.update()
    return torch.device(device)
