"""`dnatok` command line: one subcommand per stage, calling the same functions the rules call.

Each area of the package owns its subcommands in its own ``cli.py`` (``add_commands``),
so this file only stitches them together. Heavy imports (torch, transformers) happen
inside the command handlers, keeping ``dnatok --help`` fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from dnatok.errors import UserError

AREAS = (
    "dnatok.data.cli",
    "dnatok.data.simulate",
    "dnatok.tokenization.cli",
    "dnatok.train.cli",
    "dnatok.stats.cli",
    "dnatok.released.cli",
    "dnatok.embed",
    "dnatok.bend.cli",
    "dnatok.plan",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnatok", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in AREAS:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except UserError as err:
        print(f"dnatok: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
