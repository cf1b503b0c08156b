"""The ``gbsbi`` command line.

Each sub-command lives in its own module of this package with a ``register(subparsers)``
function that adds its parser and sets ``func`` (called with the parsed namespace, returns an
exit status). User errors (:class:`gbsbi.errors.GbsbiError`) print one line and exit with 2.
"""

import argparse
import importlib
import sys

from gbsbi import __version__
from gbsbi.errors import GbsbiError

#: Modules of this package that define sub-commands, in the order ``--help`` lists them.
COMMANDS = ("demo", "config", "simulate", "plot", "phi", "correlate", "importer")


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 2 and a one-line message for bad flags (its default too)."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = _Parser(prog="gbsbi", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gbsbi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"gbsbi.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"gbsbi.cli.{name}":
                continue  # sub-command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GbsbiError as err:
        print(f"gbsbi {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gbsbi {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
