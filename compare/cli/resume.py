"""``compare train --resume RUN_DIR``: continue a run exactly where its checkpoints left it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from compare.cli import flags
from compare.cli.flags import UsageError
from compare.data import Splits
from compare.harness.arch import parse_dtype
from compare.training import checkpoint
from compare.training.backend import BACKEND_NAMES
from compare.training.checkpoint import Checkpoint, CheckpointError
from compare.training.config import TrainConfig

RESUME_FLAGS = ("--epochs", "--device", "--json")
RUN_KEYS = {"config": dict, "backends": list, "lockstep": bool, "insight": bool,
            "position": dict}
RUN_META_KEYS = ("arch", "activation", "dtype", "dataset", "data_dir", "val_size", "seed", "mean",
                 "std", "sizes", "backends", "lockstep", "insight")


def read_run(run_dir: Path) -> dict[str, Checkpoint]:
    """The checkpoint of each twin that has one in ``run_dir``, checked to describe one run."""
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run folder")
    paths = [run_dir / name / f"checkpoint{checkpoint.SUFFIXES[name]}" for name in BACKEND_NAMES]
    saved = {path.parent.name: checkpoint.read(path) for path in paths if path.exists()}
    if not saved:
        raise UsageError(f"--resume {run_dir}: holds no checkpoint (looked for "
                         f"{', '.join(str(p) for p in paths)})")
    for found in saved.values():
        checkpoint.check_meta(found.path, found.meta, checkpoint.DATA_KEYS)
        if "config" not in found.meta:
            raise CheckpointError(f"{found.path}: written by an earlier version that kept no "
                                  "optimizer state; it can be evaluated but not resumed")
        checkpoint.check_meta(found.path, found.meta, RUN_KEYS)
    configs = {repr(found.meta["config"]) for found in saved.values()}
    if len(configs) > 1:
        raise CheckpointError(f"{run_dir}: its twins' checkpoints describe different runs")
    return saved


def load_run_data(path: Path, meta: dict, data_dir: Path | None = None) -> Splits:
    """The splits a checkpoint's run trained on, checked to be the same data (its pixel mean and
    standard deviation)."""
    from compare.data import load_splits

    data_dir = Path(data_dir or meta["data_dir"])
    splits = load_splits(data_dir, meta["dataset"], val_size=meta["val_size"], seed=meta["seed"],
                         dtype=parse_dtype(meta["dtype"]), download_missing=False)
    if not math.isclose(splits.mean, meta["mean"]) or not math.isclose(splits.std, meta["std"]):
        raise UsageError(f"{path}: the checkpoint was trained on data normalized with mean "
                         f"{meta['mean']:.4f}, std {meta['std']:.4f}, but {data_dir} gives "
                         f"{splits.mean:.4f}, {splits.std:.4f}: not the same data")
    return splits


def resume(args: argparse.Namespace, given: list[str]) -> int:
    """Continue the run in ``args.resume``; ``--epochs`` sets a new total."""
    from compare.cli.train import check_memory, train_run

    refused = [flag for flag in given if flag not in (*RESUME_FLAGS, "--resume")]
    if refused:
        raise UsageError(f"--resume continues a run with its own settings: {', '.join(refused)} "
                         f"cannot be changed (only {', '.join(RESUME_FLAGS)})")
    run_dir = Path(args.resume)
    saved = read_run(run_dir)
    meta = next(iter(saved.values())).meta
    config = resumed_config(args, given, meta)
    epochs_done = {name: found.meta["position"]["epoch"] for name, found in saved.items()}
    if max(epochs_done.values()) > config.epochs:
        raise UsageError(f"--epochs {config.epochs}: the run has already trained "
                         f"{max(epochs_done.values())} epochs")
    if len(saved) == len(meta["backends"]) and min(epochs_done.values()) == config.epochs:
        raise UsageError(f"--resume {run_dir}: the run has already trained its {config.epochs} "
                         "epochs; pass --epochs with more to continue it")
    check_memory(config, meta["backends"])
    splits = load_run_data(next(iter(saved.values())).path, meta)
    done_text = ", ".join(f"{name} after epoch {epoch}" for name, epoch in epochs_done.items())
    print(f"continuing {run_dir} ({done_text}) to epoch {config.epochs}",
          file=flags.output(args))
    kept = {key: meta[key] for key in RUN_META_KEYS}
    return train_run(args, config, splits, run_dir, kept | {"config": config.to_json()},
                     meta["backends"], saved)


def resumed_config(args: argparse.Namespace, given: list[str], meta: dict) -> TrainConfig:
    """The run's settings, with the new total of ``--epochs`` and the ``--device`` given."""
    saved = meta["config"]
    device = args.device if "--device" in given else saved["device"]
    return TrainConfig.from_json(saved | {
        "epochs": args.epochs if "--epochs" in given else saved["epochs"],
        "device": flags.resolve_device(device) if "torch" in meta["backends"] else "cpu"})
