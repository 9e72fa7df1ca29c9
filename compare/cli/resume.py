"""``compare train --resume RUN_DIR``: continue a run exactly where its checkpoints left it."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np

import scratch
from compare.cli import flags
from compare.cli.flags import UsageError
from compare.data import Splits
from compare.data.splits import ValidationSizeError
from compare.harness.arch import ArchError, Architecture, parse_dtype
from compare.training import checkpoint
from compare.training.backend import BACKEND_NAMES
from compare.training.checkpoint import Checkpoint, CheckpointError
from compare.training.config import SCHEDULES, TrainConfig, batch_bounds
from compare.training.optimizers import OPTIMIZER_NAMES, OptimizerSpec
from compare.training.run_dir import run_lock

RESUME_FLAGS = ("--epochs", "--device", "--json")
RUN_KEYS = {"config": dict, "backends": list, "lockstep": bool, "insight": bool,
            "position": dict}
POSITION_KEYS = {"epoch", "step", "shuffle_state", "seconds"}
DEVICES = ("cpu", "cuda")
MAX_SECONDS = 1e9
"""More seconds than any run takes (31 years): a larger figure was not measured."""
RUN_META_KEYS = ("arch", "activation", "dtype", "dataset", "data_dir", "val_size", "seed", "mean",
                 "std", "sizes", "backends", "lockstep", "insight")


def read_run(run_dir: Path) -> dict[str, Checkpoint]:
    """The checkpoint of each twin that has one in ``run_dir``, checked to describe one run."""
    paths = [run_dir / name / f"checkpoint{checkpoint.SUFFIXES[name]}" for name in BACKEND_NAMES]
    saved = {path.parent.name: read_resumable(path) for path in paths if path.exists()}
    if not saved:
        raise UsageError(f"--resume {run_dir}: holds no checkpoint (looked for "
                         f"{', '.join(str(p) for p in paths)})")
    if len({run_identity(found.meta) for found in saved.values()}) > 1:
        raise CheckpointError(f"{run_dir}: its twins' checkpoints describe different runs")
    return saved


def read_resumable(path: Path) -> Checkpoint:
    """The checkpoint at ``path``, checked to be one a run continues from."""
    found = checkpoint.read(path)
    checkpoint.check_meta(found.path, found.meta, checkpoint.DATA_KEYS)
    if "lesson" in found.meta:
        raise CheckpointError(f"{found.path}: a run of lesson {found.meta['lesson']!r}: it "
                              "can be evaluated but not resumed (run the lesson again)")
    if "config" not in found.meta:
        raise CheckpointError(f"{found.path}: written by an earlier version that kept no "
                              "optimizer state; it can be evaluated but not resumed")
    checkpoint.check_meta(found.path, found.meta, RUN_KEYS)
    check_run_state(found)
    return found


def run_identity(meta: dict) -> str:
    """What makes a run the run it is: its settings but the total of epochs and the device,
    which a resume may change (a resume interrupted between the twins leaves one twin with the
    new ones)."""
    return repr({key: value for key, value in meta["config"].items()
                 if key not in ("epochs", "device")} | {"backends": meta["backends"]})


def newest_meta(saved: dict[str, Checkpoint]) -> dict:
    """The meta holding the run's latest settings: the one with the most epochs to train."""
    return max((found.meta for found in saved.values()), key=lambda m: m["config"]["epochs"])


def at(found: Checkpoint) -> tuple[int, int]:
    """(epochs done, steps done in the next) of a checkpoint."""
    return found.meta["position"]["epoch"], found.meta["position"]["step"]


def lockstep_twins(run_dir: Path, saved: dict[str, Checkpoint]) -> dict[str, Checkpoint]:
    """The twins of a --lockstep run at one position. A run killed between the twins' saves
    has one twin an epoch ahead: that twin's ``checkpoint-previous``, the other's position,
    becomes its checkpoint again (so a second kill there leaves the same state); killed before
    the second twin's first save, that twin starts."""
    if len(saved) == 1 and at(next(iter(saved.values()))) == (0, 0):
        return saved
    if len(saved) == len(BACKEND_NAMES) and len({at(found) for found in saved.values()}) == 1:
        return saved
    if len(saved) == len(BACKEND_NAMES):
        lagging, leading = sorted(saved, key=lambda name: at(saved[name]))
        previous = saved[leading].path.with_name(
            f"checkpoint-previous{checkpoint.SUFFIXES[leading]}")
        if previous.exists():
            earlier = read_resumable(previous)
            if at(earlier) == at(saved[lagging]) and run_identity(earlier.meta) == run_identity(
                    saved[lagging].meta):
                # the leading twin goes back: the checkpoint ahead is made again, bit for bit
                os.replace(previous, saved[leading].path)
                return saved | {leading: read_resumable(saved[leading].path)}
    where = ", ".join(f"{name} at epoch {at(found)[0]} step {at(found)[1]}"
                      for name, found in saved.items())
    raise CheckpointError(f"{run_dir}: a --lockstep run whose twins' checkpoints are at "
                          f"different positions ({where}): the twins cannot continue together")


def is_count(value: object, least: int = 0) -> bool:
    """An int (not a bool, not a float) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def is_amount(value: object) -> bool:
    """A finite, non-negative number (not a bool)."""
    return (isinstance(value, int | float) and not isinstance(value, bool) and
            math.isfinite(value) and value >= 0)


def is_duration(value: object) -> bool:
    """Seconds a run can have taken: a finite amount under :data:`MAX_SECONDS`."""
    return is_amount(value) and value < MAX_SECONDS


def settings_are_valid(config: TrainConfig, meta: dict) -> bool:
    """The run's settings are ones this program's flags can give."""
    optimizer, settings = config.optimizer, config.optimizer.settings
    return (is_count(config.epochs, 1) and is_count(config.batch_size, 1) and
            is_count(config.seed) and config.seed == meta["seed"] and
            is_amount(optimizer.lr) and optimizer.lr > 0 and config.schedule in SCHEDULES and
            optimizer.name in OPTIMIZER_NAMES and config.device in DEVICES and
            OptimizerSpec.create(optimizer.name, optimizer.lr, **settings) == optimizer and
            is_amount(settings["weight_decay"]) and
            (optimizer.name != "momentum" or (is_amount(settings["momentum"]) and
                                              settings["momentum"] < 1 and
                                              isinstance(settings["nesterov"], bool))) and
            config.arch.to_meta() == Architecture.from_meta(meta).to_meta()
            and config.dtype == meta["dtype"] and
            settings["weight_decay"] < optimizer.weight_decay_limit(config.dtype)[0])


def records_are_valid(found: Checkpoint, position: dict, layers: int) -> bool:
    """What the checkpoint recorded of the epochs done and of the steps of the next one, for a
    network of ``layers`` Linear layers."""
    meta, progress = found.meta, found.progress
    seconds, loss = meta.get("epoch_seconds"), meta.get("train_loss")
    losses, norms = progress.get("losses"), progress.get("grad_norms")
    begun = position["epoch"] > 0 or position["step"] > 0
    return (is_count(position["epoch"]) and is_count(position["step"]) and
            set(position) == POSITION_KEYS and meta.get("epoch") == position["epoch"] and
            (position["shuffle_state"] is not None or not begun) and
            is_duration(position["seconds"]) and isinstance(seconds, list) and
            len(seconds) == position["epoch"] and all(is_duration(s) for s in seconds) and
            (loss is None if position["epoch"] == 0 else
             isinstance(loss, float) and is_amount(loss)) and
            set(progress) == {"losses", "grad_norms"} and
            losses.dtype == norms.dtype == np.float64 and losses.shape == (position["step"],) and
            norms.ndim == 2 and len(norms) <= position["step"] and
            (len(norms) == 0 or norms.shape[1] == layers) and
            bool(np.all(np.isfinite(losses)) and np.all(np.isfinite(norms))))


def check_run_state(found: Checkpoint) -> None:
    """The run's settings, its twins and its position in ``found`` are ones this program
    writes; CheckpointError naming the file otherwise."""
    meta, position = found.meta, found.meta["position"]
    try:
        config = TrainConfig.from_json(meta["config"])
        config.optimizer.build_scratch(scratch.Linear(1, 1).parameters())  # its settings exist
        np.random.PCG64().state = position["shuffle_state"] or np.random.PCG64().state
        problems = {
            "the settings": not settings_are_valid(config, meta),
            "the twins": not (meta["backends"] and set(meta["backends"]) <= set(BACKEND_NAMES)
                              and len(set(meta["backends"])) == len(meta["backends"]) and
                              found.path.parent.name in meta["backends"] and
                              (not meta["lockstep"] or len(meta["backends"]) == 2)),
            "the position": not records_are_valid(found, position,
                                                  len(config.arch.widths) - 1) or
                            position["epoch"] > config.epochs,
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
    from compare.training.run_log import has_summary

    saved = read_run(run_dir)
    meta = newest_meta(saved)
    if meta["lockstep"]:
        saved = lockstep_twins(run_dir, saved)
    config = resumed_config(args, given, meta)
    epochs_done = {name: at(found)[0] for name, found in saved.items()}
    if max(epochs_done.values()) > config.epochs:
        raise UsageError(f"--epochs {config.epochs}: the run has already trained "
                         f"{max(epochs_done.values())} epochs")
    if all(name in saved and epochs_done[name] == config.epochs and
           has_summary(saved[name].path.parent) for name in meta["backends"]):
        raise UsageError(f"--resume {run_dir}: the run has already trained its {config.epochs} "
                         "epochs; pass --epochs with more to continue it")
    splits = load_run_data(next(iter(saved.values())).path, meta)
    check_memory(config, meta["backends"], len(splits.train_y))
    restore_twins(saved, config, len(batch_bounds(len(splits.train_y), config.batch_size)))
    done_text = ", ".join(f"{name} after epoch {epoch}" for name, epoch in epochs_done.items())
    print(f"continuing {run_dir} ({done_text}) to epoch {config.epochs}",
          file=flags.output(args), flush=True)
    kept = {key: meta[key] for key in RUN_META_KEYS} | config.arch.to_meta()
    return train_run(args, config, splits, run_dir, kept | {"config": config.to_json()},
                     meta["backends"], saved)


def restore_twins(saved: dict[str, Checkpoint], config: TrainConfig, steps: int) -> None:
    """Restore every twin once, checking its weights and optimizer state against the run, before
    any of them trains."""
    from compare.training.backend import build_backend

    for name, found in saved.items():
        if at(found)[1] >= steps:
            raise CheckpointError(f"{found.path}: its position, step {at(found)[1]} of an epoch, "
                                  f"is past the {steps} steps of an epoch")
        build_backend(name, config, found, steps_per_epoch=steps)


def resumed_config(args: argparse.Namespace, given: list[str], meta: dict) -> TrainConfig:
    """The run's settings, with the new total of ``--epochs`` and the ``--device`` given."""
    saved = meta["config"]
    device = args.device if "--device" in given else saved["device"]
    return TrainConfig.from_json(saved | {
        "epochs": args.epochs if "--epochs" in given else saved["epochs"],
        "device": flags.resolve_device(device) if "torch" in meta["backends"] else "cpu"})
