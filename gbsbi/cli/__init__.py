"""The ``gbsbi`` command line.

Each sub-command lives in its own module of this package with a ``register(subparsers)``
function that adds its parser and sets ``func`` (called with the parsed namespace, returns an
exit status). ``register`` must stay cheap: a module imports numpy, h5py, matplotlib, scipy,
torch or dask inside the functions that use them, so that ``gbsbi --help`` starts at once.

User errors (:class:`gbsbi.errors.GbsbiError`) and usage errors print one line and exit with 2;
Ctrl-C, at any moment including start-up, prints one line and exits with 130.
"""

import argparse
import importlib
import os
import signal
import sys

from gbsbi import __version__
from gbsbi.cli.args import Parser
from gbsbi.errors import GbsbiError

#: Modules of this package that define sub-commands, in the order ``--help`` lists them.
COMMANDS = ("demo", "config", "simulate", "plot", "phi", "correlate", "importer", "train", "infer",
            "group", "embed", "check", "crosscheck", "misspec", "ppc", "report")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = Parser(
        prog="gbsbi",
        description="Simulation-based inference of grain-boundary kinetics from XPCS two-time "
        "maps.",
    )
    parser.add_argument("--version", action="version", version=f"gbsbi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"gbsbi.cli.{name}").register(sub)
    return parser


class _CtrlC:
    """Records a Ctrl-C before raising KeyboardInterrupt as Python does: a Ctrl-C that lands
    inside an import of a compiled module may surface as an ImportError instead."""

    seen = False

    def __call__(self, signum: int, frame: object) -> None:
        self.seen = True
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    command = "gbsbi"
    ctrl_c = _CtrlC()
    try:
        previous = signal.signal(signal.SIGINT, ctrl_c)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        previous = None
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help and --version (0), usage errors (2)
            return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        command = f"gbsbi {args.command}"
        return int(args.func(args) or 0)
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt) or ctrl_c.seen:
            print(f"{command}: interrupted", file=sys.stderr)
            return 130
        if isinstance(err, GbsbiError):
            print(f"{command}: error: {err}", file=sys.stderr)
            return 2
        if isinstance(err, BrokenPipeError):  # output piped into `head` and the like
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            return 0
        if isinstance(err, MemoryError):
            print(f"{command}: error: out of memory ({err})", file=sys.stderr)
            return 1
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
