"""``compare train --resume RUN_DIR``: continue a run exactly where its checkpoints left it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import scratch
from compare.cli import flags
from compare.cli.flags import UsageError
from compare.data import Splits
from compare.data.splits import ValidationSizeError
from compare.harness.arch import ArchError, parse_dtype
from compare.training import checkpoint
from compare.training.backend import BACKEND_NAMES
from compare.training.checkpoint import Checkpoint, CheckpointError
from compare.training.config import SCHEDULES, TrainConfig, batch_bounds
from compare.training.optimizers import OPTIMIZER_NAMES
from compare.training.run_dir import run_lock

RESUME_FLAGS = ("--epochs", "--device", "--json")
RUN_KEYS = {"config": dict, "backends": list, "lockstep": bool, "insight": bool,
            "position": dict}
RUN_META_KEYS = ("arch", "activation", "dtype", "dataset", "data_dir", "val_size", "seed", "mean",
                 "std", "sizes", "backends", "lockstep", "insight")


def read_run(run_dir: Path) -> dict[str, Checkpoint]:
    """The checkpoint of each twin that has one in ``run_dir``, checked to describe one run."""
    paths = [run_dir / name / f"checkpoint{checkpoint.SUFFIXES[name]}" for name in BACKEND_NAMES]
    saved = {path.parent.name: checkpoint.read(path) for path in paths if path.exists()}
    if not saved:
        raise UsageError(f"--resume {run_dir}: holds no checkpoint (looked for "
                         f"{', '.join(str(p) for p in paths)})")
    for found in saved.values():
        checkpoint.check_meta(found.path, found.meta, checkpoint.DATA_KEYS)
        if "lesson" in found.meta:
            raise CheckpointError(f"{found.path}: a run of lesson {found.meta['lesson']!r}: it "
                                  "can be evaluated but not resumed (run the lesson again)")
        if "config" not in found.meta:
            raise CheckpointError(f"{found.path}: written by an earlier version that kept no "
                                  "optimizer state; it can be evaluated but not resumed")
        checkpoint.check_meta(found.path, found.meta, RUN_KEYS)
        check_run_state(found)
    configs = {repr(found.meta["config"]) for found in saved.values()}
    if len(configs) > 1:
        raise CheckpointError(f"{run_dir}: its twins' checkpoints describe different runs")
    return saved


def check_run_state(found: Checkpoint) -> None:
    """The run's settings, its twins and its position in ``found`` are ones this program
    writes; CheckpointError naming the file otherwise."""
    meta, position = found.meta, found.meta["position"]
    try:
        config = TrainConfig.from_json(meta["config"])
        config.optimizer.build_scratch(scratch.Linear(1, 1).parameters())  # its settings exist
        np.random.PCG64().state = position["shuffle_state"] or np.random.PCG64().state
        steps = len(found.progress.get("losses", ()))
        problems = {
            "the settings": not (config.epochs >= 1 and config.batch_size >= 1 and
                                 config.seed >= 0 and math.isfinite(config.optimizer.lr) and
                                 config.optimizer.lr > 0 and config.schedule in SCHEDULES and
                                 config.optimizer.name in OPTIMIZER_NAMES and
                                 config.arch.spec == meta["arch"] and
                                 config.dtype == meta["dtype"]),
            "the twins": not (meta["backends"] and set(meta["backends"]) <= set(BACKEND_NAMES)
                              and len(set(meta["backends"])) == len(meta["backends"]) and
                              found.path.parent.name in meta["backends"] and
                              (not meta["lockstep"] or len(meta["backends"]) == 2)),
            "the position": not (0 <= position["epoch"] <= config.epochs and
                                 position["step"] == steps and
                                 math.isfinite(position["seconds"]) and position["seconds"] >= 0),
        }
    except (KeyError, TypeError, ValueError, AttributeError, ArchError) as error:
        raise CheckpointError(f"{found.path}: meta 'config' or 'position' is not what this "
                              f"program writes ({type(error).__name__}: {error})") from None
    wrong = [what for what, bad in problems.items() if bad]
    if wrong:
        raise CheckpointError(f"{found.path}: {' and '.join(wrong)} in its meta are not what "
                              "this program writes")


def load_run_data(path: Path, meta: dict, data_dir: Path | None = None) -> Splits:
    """The splits a checkpoint's run trained on, checked to be the same data (its pixel mean and
    standard deviation)."""
    from compare.data import load_splits

    data_dir = Path(data_dir or meta["data_dir"])
    try:
        splits = load_splits(data_dir, meta["dataset"], val_size=meta["val_size"],
                             seed=meta["seed"], dtype=parse_dtype(meta["dtype"]),
                             download_missing=False)
    except ValidationSizeError:
        raise UsageError(f"{path}: its run kept {meta['val_size']} validation images, which "
                         f"{data_dir} cannot give: not the data it was trained on") from None
    if not math.isclose(splits.mean, meta["mean"]) or not math.isclose(splits.std, meta["std"]):
        raise UsageError(f"{path}: the checkpoint was trained on data normalized with mean "
                         f"{meta['mean']:.4f}, std {meta['std']:.4f}, but {data_dir} gives "
                         f"{splits.mean:.4f}, {splits.std:.4f}: not the same data")
    return splits


def resume(args: argparse.Namespace, given: list[str]) -> int:
    """Continue the run in ``args.resume``; ``--epochs`` sets a new total."""
    refused = [flag for flag in given if flag not in (*RESUME_FLAGS, "--resume")]
    if refused:
        raise UsageError(f"--resume continues a run with its own settings: {', '.join(refused)} "
                         f"cannot be changed (only {', '.join(RESUME_FLAGS)})")
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run folder")
    with run_lock(run_dir):
        return continue_run(args, given, run_dir)


def continue_run(args: argparse.Namespace, given: list[str], run_dir: Path) -> int:
    """The body of :func:`resume`, while this process holds ``run_dir``."""
    from compare.cli.train import check_memory, train_run
    from compare.training.backend import build_backend

    saved = read_run(run_dir)
    meta = next(iter(saved.values())).meta
    if meta["lockstep"] and len(saved) < len(meta["backends"]):
        raise CheckpointError(f"{run_dir}: a --lockstep run, but only {', '.join(saved)} has a "
                              "checkpoint: the twins cannot continue together")
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
    steps = len(batch_bounds(len(splits.train_y), config.batch_size))
    for found in saved.values():  # every twin restored once before any of them trains
        if found.meta["position"]["step"] >= steps:
            raise CheckpointError(f"{found.path}: its position, step "
                                  f"{found.meta['position']['step']} of an epoch, is past the "
                                  f"{steps} steps of an epoch")
        build_backend(found.path.parent.name, config, found)
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
