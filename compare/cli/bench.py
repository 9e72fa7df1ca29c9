"""``compare bench``: seconds per epoch of each twin against the matrix-product floor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compare.cli import flags
from compare.data import DATASETS


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="seconds per epoch against the matmul floor")
    flags.add_network_flags(parser, dtype="float32")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    parser.add_argument("--batch-sizes", type=flags.int_list, default=[32, 64, 128, 256])
    parser.add_argument("--backends", default="scratch,torch")
    parser.add_argument("--repeats", type=flags.positive_int, default=5)
    parser.add_argument("--lr", type=flags.positive_float, default=0.1)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compare.bench.runner import BenchConfig, BenchError, rows_json, run_bench, table
    from compare.data import load_splits

    arch = flags.architecture(args)
    backends = args.backends.split(",")
    if not backends or any(b not in ("scratch", "torch") for b in backends):
        raise flags.UsageError(f"--backends {args.backends!r}: a comma list of scratch and torch")
    device = flags.resolve_device(args.device) if "torch" in backends else "cpu"
    # bad data fails here, once, before the workers; the bench trains on the whole training file
    load_splits(Path(args.data_dir), args.dataset, val_size=0)
    config = BenchConfig(args.data_dir, args.dataset, arch, args.dtype, args.lr, args.seed,
                         device)
    out = sys.stderr if args.json else sys.stdout
    try:
        rows = run_bench(config, backends, args.batch_sizes, args.repeats,
                         log=lambda line: print(line, file=out, flush=True))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(rows_json(rows)) if args.json else table(rows))
    return 0
