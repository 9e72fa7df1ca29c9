"""``compare train``: train scratch, torch or both on MNIST, logging to TensorBoard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compare.cli.flags import (
    UsageError,
    add_network_flags,
    architecture,
    positive_float,
    positive_int,
    resolve_device,
)
from compare.data import DATASETS, Splits
from compare.harness.arch import Architecture, parse_dtype
from compare.training.config import SCHEDULES, TrainConfig
from compare.training.optimizers import OPTIMIZER_NAMES, OptimizerSpec


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train scratch, torch or both on MNIST")
    parser.add_argument("--backend", choices=["scratch", "torch", "both"], default="both")
    add_network_flags(parser, dtype="float32")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=0.1)
    parser.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default="sgd")
    parser.add_argument("--momentum", type=float, default=0.9, help="for --optimizer momentum")
    parser.add_argument("--nesterov", action="store_true", help="for --optimizer momentum")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant",
                        help="learning rate per epoch: constant, or cosine decay to 0")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="for the torch backend; scratch always runs on the CPU")
    parser.add_argument("--data-dir", default="data", help="dataset root or folder of IDX files")
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    parser.add_argument("--val-size", type=int, default=None,
                        help="validation images carved from the training set (default 5000, "
                             "or 10%% when the training set is smaller than 50,000; "
                             "0: train on all of it and log no validation figures)")
    parser.add_argument("--logdir", default="runs")
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--lockstep", action="store_true",
                        help="compare the twins after every step (needs --backend both)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per backend at the end")
    parser.set_defaults(run=run)


def train_config(args: argparse.Namespace, arch: Architecture, device: str) -> TrainConfig:
    try:
        optimizer = OptimizerSpec.create(args.optimizer, args.lr, momentum=args.momentum,
                                         nesterov=args.nesterov, weight_decay=args.weight_decay)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return TrainConfig(arch, optimizer, args.epochs, args.batch_size, args.seed, args.dtype,
                       device, args.schedule)


def unused_run_dir(logdir: Path, run_name: str) -> Path:
    """``logdir/run_name``, or ``run_name-2``, ``-3``... when taken: old runs are never mixed."""
    candidate, suffix = logdir / run_name, 1
    while candidate.exists():
        suffix += 1
        candidate = logdir / f"{run_name}-{suffix}"
    return candidate


def run_meta(args: argparse.Namespace, arch: Architecture, splits: Splits) -> dict:
    """What a checkpoint needs to rebuild the network and its data."""
    return {"arch": arch.spec, "activation": arch.activation, "dtype": args.dtype,
            "dataset": args.dataset, "data_dir": str(Path(args.data_dir).resolve()),
            "val_size": len(splits.val_y), "seed": args.seed, "mean": splits.mean,
            "std": splits.std,
            "sizes": f"{len(splits.train_y)} / {len(splits.val_y)} / {len(splits.test_y)}"}


def run(args: argparse.Namespace) -> int:
    from compare.data import load_splits
    from compare.harness.lockstep import train_lockstep
    from compare.training.loop import train
    from compare.training.run_log import TrainingError

    arch = architecture(args)
    backends = ["scratch", "torch"] if args.backend == "both" else [args.backend]
    if args.lockstep and args.backend != "both":
        raise UsageError("--lockstep compares the twins step by step: it needs --backend both")
    config = train_config(args, arch, resolve_device(args.device) if "torch" in backends else "cpu")
    splits = load_splits(Path(args.data_dir), args.dataset, val_size=args.val_size,
                         seed=args.seed, dtype=parse_dtype(args.dtype))
    if splits.train_x.shape[1] != arch.widths[0]:
        raise UsageError(f"--arch {arch.spec}: the input width must be the image size "
                         f"{splits.train_x.shape[1]} of {args.dataset}")
    run_dir = unused_run_dir(Path(args.logdir), args.run_name or (
        f"{args.dataset}-{arch.spec}-{arch.activation}-{args.optimizer}-lr{args.lr:g}"
        f"-bs{args.batch_size}-{args.dtype}-seed{args.seed}"))
    meta = run_meta(args, arch, splits)
    out = sys.stderr if args.json else sys.stdout
    print(f"{args.dataset} from {splits.source['train_images'].parent}: train/val/test "
          f"{meta['sizes']}, pixels normalized with mean {splits.mean:.4f}, std "
          f"{splits.std:.4f}; logging to {run_dir}", file=out)
    log = lambda line: print(line, file=out, flush=True)  # noqa: E731
    try:
        results = (train_lockstep(config, splits, run_dir, meta, log=log) if args.lockstep else
                   train(backends, config, splits, run_dir, meta, log=log, quiet=args.json))
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for result in results if args.json else []:
        print(result.to_json())
    return 0
