"""``compare evaluate``: the test accuracy of a saved checkpoint, by either twin."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from compare.cli.flags import UsageError, resolve_device
from compare.harness.arch import parse_dtype


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="test accuracy of a saved checkpoint")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint.npz or checkpoint.pt")
    parser.add_argument("--backend", choices=["scratch", "torch"], default=None,
                        help="the twin that evaluates it (default: the one that wrote it)")
    parser.add_argument("--data-dir", default=None, help="default: where it was trained from")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compare.data import load_splits
    from compare.training import checkpoint
    from compare.training.backend import evaluation_backend

    path = Path(args.checkpoint)
    wants_torch = args.backend == "torch" or (
        args.backend is None and path.suffix == checkpoint.SUFFIXES["torch"])
    device = resolve_device(args.device) if wants_torch else "cpu"
    meta, model = checkpoint.load(path, args.backend, device=device)
    data_dir = Path(args.data_dir or meta["data_dir"])
    splits = load_splits(data_dir, meta["dataset"], val_size=meta["val_size"], seed=meta["seed"],
                         dtype=parse_dtype(meta["dtype"]))
    if not math.isclose(splits.mean, meta["mean"]) or not math.isclose(splits.std, meta["std"]):
        raise UsageError(f"{path}: the checkpoint was trained on data normalized with mean "
                         f"{meta['mean']:.4f}, std {meta['std']:.4f}, but {data_dir} gives "
                         f"{splits.mean:.4f}, {splits.std:.4f}; pass the right --data-dir")
    backend = evaluation_backend(model)
    loss, accuracy = backend.evaluate(splits.test_x, splits.test_y)
    result = {"checkpoint": str(path), "written_by": meta["written_by"], "backend": backend.name,
              "epoch": meta.get("epoch"), "test_loss": loss, "test_accuracy": accuracy}
    print(json.dumps(result) if args.json else
          f"{path} ({meta['written_by']} checkpoint, epoch {meta.get('epoch')}) evaluated by "
          f"{backend.name}: test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    return 0
