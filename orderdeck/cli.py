"""The ``orderdeck`` command: one entry point, one module per sub-command under ``commands/``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. Commands
import their heavy dependencies lazily so ``orderdeck --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from orderdeck import __version__
from orderdeck.errors import OrderdeckError

COMMAND_MODULES = ("launch", "serve", "kafka", "tail", "groups", "orders", "dlq")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="orderdeck",
        description="Order processing on Apache Kafka, with a terminal control center.",
    )
    parser.add_argument("--version", action="version", version=f"orderdeck {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"orderdeck.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors we expect are one line on stderr, never a traceback."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["groups", "reset"]:  # its own parser; a group named "reset": `groups -- reset`
        args = importlib.import_module("orderdeck.commands.group_reset").parse(argv[2:])
    else:
        args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except OrderdeckError as exc:
        print(f"orderdeck: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``orderdeck ... | head``); that is not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
