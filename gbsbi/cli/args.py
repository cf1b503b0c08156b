"""What the sub-commands share: one-line usage errors and argument types for numeric flags.

Every numeric flag goes through one of these types, so ``inf``, ``nan`` and values outside a
flag's range are refused while the command line is parsed, with one line and exit status 2:
``gbsbi simulate: error: --temperature must be positive and finite, got 'inf'``.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (no usage block) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        # "argument --n: must be ..." reads as "--n must be ..."
        message = re.sub(r"^argument ([^:]+): must ", r"\1 must ", message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {'a whole number' if kind is int else 'a number'}, got {text!r}"
        ) from None


def finite_float(text: str) -> float:
    """A finite number (``inf`` and ``nan`` are refused)."""
    value = _number(text, float)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be positive and finite, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be >= 0 and finite, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """A whole number >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text!r}")
    return value


def positive_floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of finite numbers > 0, e.g. ``300,350,400``."""
    return tuple(positive_float(item) for item in text.split(","))
