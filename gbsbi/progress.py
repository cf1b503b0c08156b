"""Progress of long work: a bar on a terminal, lines in a log.

On a terminal, :func:`progress_bar` is tqdm's bar (on standard error). When standard error is
not a terminal (nohup, a batch system, a notebook's captured output), a bar would print nothing
(tqdm's ``disable=None``) or one carriage-returned line that never ends; instead one line goes
to standard output per whole epoch (unit ``epoch``) or per 10 % of the work, with what the bar
would show:
``train: 40% 12/30 epochs [1:02 elapsed, 1:33 left] val_nll=-3.912 loss=-3.951``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO


class LogProgress:
    """tqdm's interface (``update``, ``n``, ``set_postfix``, ``refresh``, ``close``) writing
    one line per step of the work to a stream.

    Args:
        total: the amount of work.
        desc: what the work is.
        unit: its unit (``epoch`` prints a line per whole epoch, anything else per 10 %).
        stream: where lines go (standard output, so that standard error keeps only warnings
            and errors).
    """

    def __init__(self, total: float, desc: str, unit: str, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit = float(total), desc, unit
        self.stream = stream if stream is not None else sys.stdout
        self.n = 0.0
        self.postfix: dict = {}
        self.start = time.monotonic()
        self.shown = 0

    def _step(self, n: float) -> int:
        if self.unit == "epoch":
            return int(n)
        return int(10 * n / self.total) if self.total > 0 else 10

    def update(self, k: float = 1) -> None:
        self.n += k
        self.refresh()

    def set_postfix(self, values: dict | None = None, refresh: bool = True) -> None:
        self.postfix = dict(values or {})
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        step = self._step(self.n)
        if step > self.shown:
            self.shown = step
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        fraction = self.n / self.total if self.total > 0 else 1.0
        left = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        count = f"{self.n:g}/{self.total:g} {self.unit}s"
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return (f"{self.desc}: {fraction:.0%} {count} [{_clock(elapsed)} elapsed, "
                f"{_clock(left)} left]" + (f" {extra}" if extra else ""))

    def close(self) -> None:
        pass

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _clock(seconds: float) -> str:
    if seconds != seconds:  # NaN: nothing done yet
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(total: float, desc: str, unit: str = "it", show: bool | None = None,
                 **tqdm_options: object) -> Iterator[object]:
    """A progress display over ``total`` units of work.

    Args:
        total: the amount of work.
        desc: what the work is (the line's or bar's label).
        unit: its unit.
        show: True for tqdm's bar, False for nothing, None for a bar on a terminal and
            lines (:class:`LogProgress`) elsewhere.
        tqdm_options: passed to tqdm where it draws the bar (``bar_format``, ``smoothing``).
    """
    if show is False:
        yield LogProgress(total, desc, unit, stream=_Null())
        return
    if show is None and not is_terminal():
        yield LogProgress(total, desc, unit)
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, **tqdm_options) as bar:
        yield bar


class _Null:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass
