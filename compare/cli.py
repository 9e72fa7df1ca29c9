"""``python -m compare {parity,train,evaluate,bench}``: exit 0 on success, 1 when a check fails,
2 on bad arguments or bad data (one line on stderr naming the flag or file)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from compare.arch import ArchError, Architecture, parse_dtype
from compare.checkpoint import CheckpointError
from compare.data import DATASETS, DataError


class UsageError(Exception):
    """Bad arguments or input data: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_network_flags(parser: argparse.ArgumentParser, *, dtype: str) -> None:
    parser.add_argument(
        "--arch",
        default="784-128-64-10",
        help="layer widths, input first and classes last (default %(default)s)",
    )
    parser.add_argument("--activation", default="relu", help="relu, sigmoid or tanh (%(default)s)")
    parser.add_argument("--dtype", default=dtype, help="float32 or float64 (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="fixes every random draw (%(default)s)")


def _architecture(args: argparse.Namespace) -> Architecture:
    parse_dtype(args.dtype)
    return Architecture.parse(args.arch, args.activation)


def _run_parity(args: argparse.Namespace) -> int:
    from compare.parity import run_parity

    report = run_parity(
        _architecture(args), dtype=args.dtype, batch_size=args.batch_size, seed=args.seed
    )
    print(json.dumps(report.to_json()) if args.json else report.table())
    return 0 if report.ok else 1


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _resolve_device(requested: str) -> str:
    """cpu, cuda or auto (cuda when available); imports torch."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: CUDA is not available to this torch {torch.__version__} "
                         "(no GPU or driver); use --device cpu or auto")
    return requested


def _unused_run_dir(logdir: Path, run_name: str) -> Path:
    """``logdir/run_name``, or ``run_name-2``, ``-3``... when taken: old runs are never mixed."""
    candidate, suffix = logdir / run_name, 1
    while candidate.exists():
        suffix += 1
        candidate = logdir / f"{run_name}-{suffix}"
    return candidate


def _run_train(args: argparse.Namespace) -> int:
    from compare.data import load_splits
    from compare.optimizers import OptimizerSpec
    from compare.train import TrainConfig, TrainingError, results_json, train

    arch = _architecture(args)
    backends = ["scratch", "torch"] if args.backend == "both" else [args.backend]
    if args.lockstep and args.backend != "both":
        raise UsageError("--lockstep compares the twins step by step: it needs --backend both")
    try:
        optimizer = OptimizerSpec.create(args.optimizer, args.lr, momentum=args.momentum,
                                         nesterov=args.nesterov, weight_decay=args.weight_decay)
    except ValueError as error:
        raise UsageError(str(error)) from None
    device = _resolve_device(args.device) if "torch" in backends else "cpu"
    splits = load_splits(Path(args.data_dir), args.dataset, val_size=args.val_size,
                         seed=args.seed, dtype=parse_dtype(args.dtype))
    if splits.train_x.shape[1] != arch.widths[0]:
        raise UsageError(f"--arch {arch.spec}: the input width must be the image size "
                         f"{splits.train_x.shape[1]} of {args.dataset}")
    config = TrainConfig(arch, optimizer, args.epochs, args.batch_size, args.seed, args.dtype,
                         device, args.schedule, args.lockstep)
    run_name = args.run_name or (f"{args.dataset}-{arch.spec}-{arch.activation}-{args.optimizer}"
                                 f"-lr{args.lr:g}-bs{args.batch_size}-{args.dtype}-seed{args.seed}")
    run_dir = _unused_run_dir(Path(args.logdir), run_name)
    meta = {"arch": arch.spec, "activation": arch.activation, "dtype": args.dtype,
            "dataset": args.dataset, "data_dir": str(Path(args.data_dir).resolve()),
            "val_size": len(splits.val_y), "seed": args.seed, "mean": splits.mean,
            "std": splits.std,
            "sizes": f"{len(splits.train_y)} / {len(splits.val_y)} / {len(splits.test_y)}"}
    out = sys.stderr if args.json else sys.stdout
    print(f"{args.dataset} from {splits.source['train_images'].parent}: train/val/test "
          f"{meta['sizes']}, pixels normalized with mean {splits.mean:.4f}, std "
          f"{splits.std:.4f}; logging to {run_dir}", file=out)
    try:
        results = train(backends, config, splits, run_dir, meta, quiet=args.json,
                        log=lambda line: print(line, file=out, flush=True))
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        for result in results:
            print(results_json(result))
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from compare import checkpoint
    from compare.data import load_splits

    path = Path(args.checkpoint)
    device = _resolve_device(args.device) if args.backend == "torch" or (
        args.backend is None and path.suffix == checkpoint.SUFFIXES["torch"]) else "cpu"
    meta, model = checkpoint.load(path, args.backend, device=device)
    data_dir = Path(args.data_dir or meta["data_dir"])
    splits = load_splits(data_dir, meta["dataset"], val_size=meta["val_size"], seed=meta["seed"],
                         dtype=parse_dtype(meta["dtype"]))
    if not math.isclose(splits.mean, meta["mean"]) or not math.isclose(splits.std, meta["std"]):
        raise UsageError(f"{path}: the checkpoint was trained on data normalized with mean "
                         f"{meta['mean']:.4f}, std {meta['std']:.4f}, but {data_dir} gives "
                         f"{splits.mean:.4f}, {splits.std:.4f}; pass the right --data-dir")
    backend = args.backend or meta["written_by"]
    if backend == "scratch":
        from compare.backend_scratch import ScratchBackend as Backend
    else:
        from compare.backend_torch import TorchBackend as Backend
    from compare.optimizers import OptimizerSpec

    evaluator = Backend(model, OptimizerSpec.create("sgd", 1.0), splits.train_x, splits.train_y)
    loss, accuracy = evaluator.evaluate(splits.test_x, splits.test_y)
    result = {"checkpoint": str(path), "written_by": meta["written_by"], "backend": backend,
              "epoch": meta.get("epoch"), "test_loss": loss, "test_accuracy": accuracy}
    print(json.dumps(result) if args.json else
          f"{path} ({meta['written_by']} checkpoint, epoch {meta.get('epoch')}) evaluated by "
          f"{backend}: test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers joined by ',', got {text!r}")
    return values


def _run_bench(args: argparse.Namespace) -> int:
    from compare.bench import BenchConfig, BenchError, rows_json, run_bench, table

    arch = _architecture(args)
    backends = args.backends.split(",")
    if not backends or any(b not in ("scratch", "torch") for b in backends):
        raise UsageError(f"--backends {args.backends!r}: a comma list of scratch and torch")
    device = _resolve_device(args.device) if "torch" in backends else "cpu"
    from compare.data import load_splits

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="compare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    parity = commands.add_parser("parity", help="compare forward outputs and gradients per layer")
    _add_network_flags(parity, dtype="float64")
    parity.add_argument("--batch-size", type=_positive_int, default=32)
    parity.add_argument("--json", action="store_true", help="print one JSON object")
    parity.set_defaults(run=_run_parity)

    trainer = commands.add_parser("train", help="train scratch, torch or both on MNIST")
    trainer.add_argument("--backend", choices=["scratch", "torch", "both"], default="both")
    _add_network_flags(trainer, dtype="float32")
    trainer.add_argument("--epochs", type=_positive_int, default=10)
    trainer.add_argument("--batch-size", type=_positive_int, default=64)
    trainer.add_argument("--lr", type=_positive_float, default=0.1)
    trainer.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default="sgd")
    trainer.add_argument("--momentum", type=float, default=0.9, help="for --optimizer momentum")
    trainer.add_argument("--nesterov", action="store_true", help="for --optimizer momentum")
    trainer.add_argument("--weight-decay", type=float, default=0.0)
    trainer.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                         help="learning rate per epoch: constant, or cosine decay to 0")
    trainer.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                         help="for the torch backend; scratch always runs on the CPU")
    trainer.add_argument("--data-dir", default="data", help="dataset root or folder of IDX files")
    trainer.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    trainer.add_argument("--val-size", type=int, default=None,
                         help="validation images carved from the training set (default 5000, "
                              "or 10%% when the training set is smaller than 50,000; "
                              "0: train on all of it and log no validation figures)")
    trainer.add_argument("--logdir", default="runs")
    trainer.add_argument("--run-name", default=None)
    trainer.add_argument("--lockstep", action="store_true",
                         help="compare the twins after every step (needs --backend both)")
    trainer.add_argument("--json", action="store_true",
                         help="print one JSON object per backend at the end")
    trainer.set_defaults(run=_run_train)

    evaluate = commands.add_parser("evaluate", help="test accuracy of a saved checkpoint")
    evaluate.add_argument("--checkpoint", required=True, help="a checkpoint.npz or checkpoint.pt")
    evaluate.add_argument("--backend", choices=["scratch", "torch"], default=None,
                          help="the twin that evaluates it (default: the one that wrote it)")
    evaluate.add_argument("--data-dir", default=None, help="default: where it was trained from")
    evaluate.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=_run_evaluate)

    bench = commands.add_parser("bench", help="seconds per epoch against the matmul floor")
    _add_network_flags(bench, dtype="float32")
    bench.add_argument("--data-dir", default="data")
    bench.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    bench.add_argument("--batch-sizes", type=_int_list, default=[32, 64, 128, 256])
    bench.add_argument("--backends", default="scratch,torch")
    bench.add_argument("--repeats", type=_positive_int, default=5)
    bench.add_argument("--lr", type=_positive_float, default=0.1)
    bench.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    bench.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    bench.set_defaults(run=_run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (UsageError, ArchError, DataError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
