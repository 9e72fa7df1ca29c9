"""``compare parity``: forward outputs and gradients of the twins, layer by layer."""

from __future__ import annotations

import argparse
import json

from compare.cli.flags import add_network_flags, architecture, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("parity", help="compare forward outputs and gradients per layer")
    add_network_flags(parser, dtype="float64")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compare.harness.parity import run_parity

    report = run_parity(architecture(args), dtype=args.dtype, batch_size=args.batch_size,
                        seed=args.seed)
    print(json.dumps(report.to_json()) if args.json else report.table())
    return 0 if report.ok else 1
