"""``python -m compare {parity,train,evaluate,bench}``: exit 0 on success, 1 when a check fails,
2 on bad arguments or bad data (one line on stderr naming the flag or file)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from compare.cli import bench, evaluate, parity, train
from compare.cli.flags import Parser, UsageError
from compare.data import DataError
from compare.harness.arch import ArchError
from compare.training.checkpoint import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="compare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in (parity, train, evaluate, bench):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (UsageError, ArchError, DataError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
