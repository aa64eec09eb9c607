"""The ``vidconv-edge`` command line: thin argparse front-end over the importable API.

Each command group lives in ``vidconv_edge/commands/<group>.py`` with ``register(subparsers)``;
a handler returns an exit code. Bad input raises ``UserError``: one message, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from vidconv_edge import __version__
from vidconv_edge.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    import vidconv_edge.commands as commands

    parser = argparse.ArgumentParser(
        prog="vidconv-edge",
        description="Efficient video recognition (VidConv, SEVNet) from training to an FPGA.",
    )
    parser.add_argument("--version", action="version", version=f"vidconv-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"vidconv_edge.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except UserError as e:
        print(f"vidconv-edge {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidconv-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
