"""The ``gbsbi`` command line.

Each sub-command lives in its own module of this package with a ``register(subparsers)``
function that adds its parser and sets ``func`` (called with the parsed namespace, returns an
exit status). User errors (:class:`gbsbi.errors.GbsbiError`) print one line and exit with 2.
"""

import argparse
import importlib
import os
import sys

from gbsbi import __version__
from gbsbi.errors import GbsbiError

#: Modules of this package that define sub-commands, in the order ``--help`` lists them.
COMMANDS = ("demo", "config", "simulate", "plot", "phi", "correlate", "importer", "train", "infer",
            "check", "crosscheck", "misspec", "ppc", "report")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="gbsbi",
        description="Simulation-based inference of grain-boundary kinetics from XPCS two-time "
        "maps.",
    )
    parser.add_argument("--version", action="version", version=f"gbsbi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"gbsbi.cli.{name}").register(sub)
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
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


if __name__ == "__main__":
    sys.exit(main())
