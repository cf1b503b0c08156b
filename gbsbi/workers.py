"""Worker processes and Ctrl-C: a pool's workers leave Ctrl-C to the main process, which
stops them and keeps what they finished (bank blocks, ensemble members' checkpoints)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C back while worker processes start, and raise it afterwards.

    SIGINT is blocked in this thread, so processes started meanwhile inherit it blocked
    (through fork and exec) and a Ctrl-C while they import does not end each in a traceback;
    and the Python handler only records it, since another thread (a progress bar's monitor)
    may take the signal for the process.
    """
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread: nothing to hold
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def ignore_ctrl_c() -> None:
    """Worker initialiser: Ctrl-C is left to the main process, which stops the pool (the
    finished work is kept)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
