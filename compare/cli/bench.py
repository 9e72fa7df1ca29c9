"""``compare bench``: seconds per epoch of each twin against the matrix-product floor, and of
each network with normalization or dropout against the plain network; with ``--insight``, what
the insight logging costs a training run."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import compare.cli.flags as flags
from compare.data import DATASETS

if TYPE_CHECKING:
    from compare.harness.arch import Architecture

TIMEOUT = 600.0
"""Seconds a bench worker may take to answer one request, unless --timeout says otherwise."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="seconds per epoch against the matmul floor")
    flags.add_network_flags(parser, dtype="float32", layer_lists=True)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    parser.add_argument("--batch-sizes", type=flags.int_list, default=[32, 64, 128, 256])
    parser.add_argument("--backends", default="scratch,torch")
    parser.add_argument("--repeats", type=flags.positive_int, default=5)
    parser.add_argument("--lr", type=flags.positive_float, default=0.1)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--timeout", type=flags.positive_float, default=None,
                        help=f"seconds a worker may take to answer one request ({TIMEOUT:g}; at "
                             "least the 0.5 s between two looks at the workers)")
    parser.add_argument("--insight", action="store_true",
                        help="time whole training runs (compare.fit) with and without the "
                             "insight logging instead, one network, alternated in this process")
    parser.add_argument("--epochs", type=flags.positive_int, default=None,
                        help="the epochs of each --insight run (default 10)")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    parser.set_defaults(run=run)


def check_flags(args: argparse.Namespace, poll_seconds: float) -> list[str]:
    """The backends to bench, every flag checked."""
    backends = args.backends.split(",")
    if sorted(set(backends)) != sorted(backends) or not set(backends) <= {"scratch", "torch"}:
        raise flags.UsageError(f"--backends {args.backends!r}: scratch, torch or both, joined by "
                               "','")
    repeated = sorted({size for size in args.batch_sizes if args.batch_sizes.count(size) > 1})
    if repeated:
        raise flags.UsageError(f"--batch-sizes {','.join(map(str, args.batch_sizes))}: "
                               f"{', '.join(map(str, repeated))} given more than once; give each "
                               "batch size once (--repeats sets how often each is timed)")
    if args.timeout is not None and args.timeout < poll_seconds:
        raise flags.UsageError(f"--timeout {args.timeout:g}: the workers are looked at every "
                               f"{poll_seconds:g} s; give at least {poll_seconds:g}")
    return backends


def networks_of(args: argparse.Namespace) -> tuple[Architecture, ...]:
    """The networks to time: the plain one (``--arch``, ``--activation``, ``--init``, no norm, no
    dropout) first, then one per combination of the ``--norm`` and ``--dropout`` values."""
    norms = distinct(args.norm.split(","), "--norm", args.norm)
    try:
        dropouts = distinct([float(p) for p in args.dropout.split(",")], "--dropout", args.dropout)
    except ValueError:
        raise flags.UsageError(f"--dropout {args.dropout!r}: expected probabilities joined by "
                               "','") from None
    plain = flags.classifier(argparse.Namespace(**vars(args) | {"norm": "none", "dropout": 0.0}))
    grid = [replace(plain, norm=norm, dropout=dropout) for norm in norms for dropout in dropouts]
    return tuple(dict.fromkeys([plain, *grid]))


def check_batch_norm_batches(batch_sizes: list[int], networks: tuple[Architecture, ...]) -> None:
    if 1 in batch_sizes and any(network.norm == "batch" for network in networks):
        raise flags.UsageError(f"--batch-sizes {','.join(map(str, batch_sizes))} with --norm "
                               "batch: batch norm normalizes each feature over the batch, which "
                               "needs at least 2 examples")


def distinct(values: list, flag: str, given: str) -> list:
    """``values`` (a flag's, joined by ',' in ``given``), refused if one is given twice."""
    twice = [value for index, value in enumerate(values) if value in values[:index]]
    if twice:
        raise flags.UsageError(f"{flag} {given}: {twice[0]} given more than once; give each "
                               "once")
    return values


def run(args: argparse.Namespace) -> int:
    if args.insight:
        return run_insight_cost(args)
    if args.epochs is not None:
        raise flags.UsageError(f"--epochs {args.epochs}: only with --insight (the epoch bench "
                               "times one epoch a repeat)")
    from compare.bench.runner import POLL_SECONDS, BenchConfig, rows_json, run_bench, table
    from compare.data import load_splits
    from compare.harness.arch import parse_dtype
    from compare.memory import Footprint, check_fits
    from compare.training.backend import EVALUATION_ROWS

    networks = networks_of(args)
    arch = networks[0]
    backends = check_flags(args, POLL_SECONDS)
    check_batch_norm_batches(args.batch_sizes, networks)
    device = flags.resolve_device(args.device) if "torch" in backends else "cpu"
    # bad data fails here, once, before the workers; the bench trains on the whole training file
    splits = load_splits(Path(args.data_dir), args.dataset, val_size=0)
    flags.check_input_width(arch, splits.train_x.shape[1], args.dataset)
    footprint = Footprint(arch.widths, parse_dtype(args.dtype)().itemsize,
                          networks=2 * len(args.batch_sizes) * len(networks),
                          arrays_per_parameter=3,
                          batch_size=min(max(args.batch_sizes), len(splits.train_y)),
                          evaluation_rows=EVALUATION_ROWS)
    check_fits(footprint, "the bench's workers", "--batch-sizes")
    del splits
    config = BenchConfig(args.data_dir, args.dataset, networks, args.dtype, args.lr, args.seed,
                         device)
    out = flags.output(args)
    rows = run_bench(config, backends, args.batch_sizes, args.repeats,
                     log=lambda line: print(line, file=out, flush=True),
                     timeout=TIMEOUT if args.timeout is None else args.timeout)
    print(flags.strict_json(rows_json(rows)) if args.json else table(rows))
    return 0


def check_insight_flags(args: argparse.Namespace) -> None:
    """Refuse what --insight cannot take: several networks, a worker timeout."""
    if "," in args.norm or "," in args.dropout:
        raise flags.UsageError(f"--norm {args.norm} --dropout {args.dropout} with --insight: it "
                               "times one network; give each one value")
    if args.timeout is not None:
        raise flags.UsageError(f"--timeout {args.timeout:g}: for the epoch bench's workers; "
                               "--insight trains in this process")


def run_insight_cost(args: argparse.Namespace) -> int:
    """``--insight``: each batch size's runs with and without insight, then the table."""
    from compare.bench.insight_cost import measure, table
    from compare.bench.runner import POLL_SECONDS
    from compare.data import load_splits
    from compare.harness.arch import parse_dtype
    from compare.training.build import check_memory
    from compare.training.config import TrainConfig
    from compare.training.optimizers import OptimizerSpec

    check_insight_flags(args)
    arch = networks_of(args)[-1]  # the plain network, or the one with the layers asked for
    backends = check_flags(args, POLL_SECONDS)
    check_batch_norm_batches(args.batch_sizes, (arch,))
    device = flags.resolve_device(args.device) if "torch" in backends else "cpu"
    splits = load_splits(Path(args.data_dir), args.dataset, seed=args.seed,
                         dtype=parse_dtype(args.dtype))
    flags.check_input_width(arch, splits.train_x.shape[1], args.dataset)
    rows = len(splits.train_y)
    epochs = args.epochs or 10
    configs = [TrainConfig(arch, OptimizerSpec.create("sgd", args.lr), epochs, batch_size,
                           args.seed, args.dtype, device) for batch_size in args.batch_sizes]
    for config in configs:
        if config.batch_size > rows:
            raise flags.UsageError(f"--batch-sizes {config.batch_size}: more than the {rows} "
                                   f"training images of {args.dataset}")
        check_memory(config, backends, rows, batch_flag="--batch-sizes")
    out = flags.output(args)
    print(f"insight cost: {epochs} epoch{'s' * (epochs > 1)} of {arch.spec} "
          f"{arch.activation_label} on {args.dataset} ({rows} training images), "
          f"{' and '.join(backends)}, {args.dtype}, {args.repeats} "
          f"repeat{'s' * (args.repeats > 1)} with and without insight", file=out)
    costs = [measure(splits, config, "both" if len(backends) == 2 else backends[0], args.repeats,
                     log=lambda line: print(line, file=out, flush=True)) for config in configs]
    print(flags.strict_json({"rows": [cost.row() for cost in costs]}) if args.json
          else table(costs))
    return 0
