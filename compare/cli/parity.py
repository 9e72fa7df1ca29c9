"""``compare parity``: forward outputs and gradients of the twins, layer by layer, and finite
differences on scratch's."""

from __future__ import annotations

import argparse

from compare.cli.flags import add_network_flags, architecture, positive_int, strict_json


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("parity", help="compare forward outputs and gradients per layer")
    add_network_flags(parser, dtype="float64")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compare.harness.parity import parity_footprint, run_parity
    from compare.memory import check_fits

    arch = architecture(args)
    check_fits(parity_footprint(arch, args.dtype, args.batch_size), "comparing both twins")
    report = run_parity(arch, dtype=args.dtype, batch_size=args.batch_size, seed=args.seed)
    print(strict_json(report.to_json()) if args.json else report.table())
    return 0 if report.ok else 1
