"""``compare train --resume RUN_DIR``: the run to continue, read from its checkpoints and checked
whole (settings, position, records, weights, optimizer state) before any twin trains."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import compare.cli.flags as flags
from compare.cli.flags import UsageError
from compare.data import Splits
from compare.data.splits import ValidationSizeError
from compare.harness.arch import ArchError, Architecture, parse_dtype
from compare.training import checkpoint, early_stopping
from compare.training.backend import BACKEND_NAMES
from compare.training.checkpoint import Checkpoint, CheckpointError
from compare.training.config import (
    Position,
    SettingsError,
    TrainConfig,
    check_shuffle_state,
    is_amount,
    is_count,
    steps_per_epoch,
)

if TYPE_CHECKING:
    from compare.training.loop import Run

RESUME_FLAGS = ("--epochs", "--device", "--json")
RUN_KEYS = {"config": dict, "backends": list, "lockstep": bool, "insight": bool,
            "position": dict}
POSITION_KEYS = {"epoch", "step", "shuffle_state", "seconds"}
MAX_SECONDS = 1e9
"""More seconds than any run takes (31 years): a larger figure was not measured."""
RUN_META_KEYS = ("arch", "activation", "dtype", "dataset", "data_dir", "val_size", "seed", "mean",
                 "std", "sizes", "backends", "lockstep", "insight")


def resume_command(run_dir: Path) -> str:
    return f"python -m compare train --resume {run_dir}"


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
    if "script" in found.meta:
        raise CheckpointError(f"{found.path}: a run of {found.meta['script']} from a script, "
                              "which knows no data folder: it cannot be resumed here")
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
    which a resume may change."""
    return repr({key: value for key, value in meta["config"].items()
                 if key not in ("epochs", "device")} | {"backends": meta["backends"]})


def newest_meta(saved: dict[str, Checkpoint]) -> dict:
    """The meta holding the run's latest settings: the one with the most epochs to train."""
    return max((found.meta for found in saved.values()), key=lambda m: m["config"]["epochs"])


def at(found: Checkpoint) -> tuple[int, int]:
    """(epochs done, steps done in the next) of a checkpoint."""
    return found.meta["position"]["epoch"], found.meta["position"]["step"]


def twins_at_one_position(run_dir: Path, saved: dict[str, Checkpoint], backends: list[str]
                          ) -> dict[str, Checkpoint]:
    """The twins' checkpoints at one position. The twins save one after the other, so a run
    killed between their saves has one twin a position ahead: that twin's
    ``checkpoint-previous``, the other's position, becomes its checkpoint again (so a second
    kill there leaves the same state); killed before the second twin's first save, that twin
    starts."""
    positions = {at(found) for found in saved.values()}
    if len(positions) == 1 and (len(saved) == len(backends) or positions == {(0, 0)}):
        return saved
    if len(saved) == len(backends) == 2:
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
    where = ", ".join([f"{name} at epoch {at(saved[name])[0]} step {at(saved[name])[1]}" if
                       name in saved else f"{name} without a checkpoint" for name in backends])
    raise CheckpointError(f"{run_dir}: its twins' checkpoints are at different positions "
                          f"({where}), which the twins cannot continue from together (an "
                          "earlier version trained them one after the other); start it again")


def is_duration(value: object) -> bool:
    """Seconds a run can have taken: a finite amount under :data:`MAX_SECONDS`."""
    return is_amount(value) and value < MAX_SECONDS


def settings_are_valid(config: TrainConfig, meta: dict) -> bool:
    """The run's settings are ones a run can have, and those of its network and data."""
    try:
        config.check()
    except SettingsError:
        return False
    return (config.seed == meta["seed"] and config.dtype == meta["dtype"] and
            config.arch.to_meta() == Architecture.from_meta(meta).to_meta())


def records_are_valid(found: Checkpoint, position: dict) -> bool:
    """What the checkpoint's meta recorded of the epochs done."""
    meta = found.meta
    seconds, loss = meta.get("epoch_seconds"), meta.get("train_loss")
    begun = position["epoch"] > 0 or position["step"] > 0
    return (is_count(position["epoch"]) and is_count(position["step"]) and
            set(position) == POSITION_KEYS and meta.get("epoch") == position["epoch"] and
            (position["shuffle_state"] is not None or not begun) and
            is_duration(position["seconds"]) and isinstance(seconds, list) and
            len(seconds) == position["epoch"] and all(is_duration(s) for s in seconds) and
            (loss is None if position["epoch"] == 0 else
             isinstance(loss, float) and is_amount(loss)))


def step_records_problem(progress: dict, steps: int, layers: int) -> str | None:
    """What is wrong with the records of the ``steps`` steps taken in the epoch under way, or
    None: their losses (steps,), the gradient norms and the update ratios of the recorded ones
    (rows, ``layers``; (0, 0) for none), float64 and finite. A checkpoint of a version before
    the update ratios has none, which it may where it recorded no step (at an epoch's end). How
    many rows the recorded steps make, :func:`compare.training.twin.restored_records` checks."""
    names = ("losses", "grad_norms", "update_ratios")
    if not {"losses", "grad_norms"} <= progress.keys() <= set(names):
        return (f"progress holds {', '.join(sorted(progress)) or 'nothing'}, not "
                f"{', '.join(names)}")
    if "update_ratios" not in progress and len(progress["grad_norms"]):
        return "progress/update_ratios is missing"
    for name, array in progress.items():
        if name == "losses":
            shape_ok, expected = array.shape == (steps,), f"({steps},)"
        else:
            shape_ok = array.ndim == 2 and len(array) <= steps and (
                array.shape[1] == layers or array.shape == (0, 0))
            expected = f"(at most {steps} rows, {layers})"
        if not shape_ok:
            return (f"progress/{name} has shape {array.shape}, not {expected} for the {steps} "
                    f"steps taken of a network of {layers} Linear layers")
        if array.dtype != np.float64:
            return f"progress/{name} holds {array.dtype} values, not float64"
        if not np.all(np.isfinite(array)):
            return f"progress/{name} holds non-finite values"
    return None


def twins_are_valid(found: Checkpoint) -> bool:
    """The run's twins: one or both, named once each, the checkpoint's own among them, and both
    under --lockstep."""
    backends = found.meta["backends"]
    return (bool(backends) and all(isinstance(name, str) for name in backends) and
            set(backends) <= set(BACKEND_NAMES) and len(set(backends)) == len(backends) and
            found.path.parent.name in backends and
            (not found.meta["lockstep"] or len(backends) == 2))


def check_run_state(found: Checkpoint) -> None:
    """The run's settings, its twins and its position in ``found`` are ones this program
    writes; CheckpointError naming the file otherwise."""
    meta, position = found.meta, found.meta["position"]
    try:
        config = TrainConfig.from_json(meta["config"])
        if position["shuffle_state"] is not None:
            check_shuffle_state(position["shuffle_state"])
        problems = {
            "the settings": not settings_are_valid(config, meta),
            "the twins": not twins_are_valid(found),
            "the position": not records_are_valid(found, position) or
                            position["epoch"] > config.epochs,
            "the early-stopping counts": not early_stopping.meta_is_valid(
                meta.get(early_stopping.META_KEY), config.patience, position["epoch"]),
        }
    except (KeyError, TypeError, ValueError, AttributeError, ArchError) as error:
        raise CheckpointError(f"{found.path}: meta 'config' or 'position' is not what this "
                              f"program writes ({type(error).__name__}: {error})") from None
    wrong = [what for what, bad in problems.items() if bad]
    if wrong:
        raise CheckpointError(f"{found.path}: its meta is not what this program writes "
                              f"({', '.join(wrong)})")
    problem = step_records_problem(found.progress, position["step"], len(config.arch.widths) - 1)
    if problem:
        raise CheckpointError(f"{found.path}: {problem}")


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


def run_folder(args: argparse.Namespace, given: list[str]) -> Path:
    """The folder of the run ``--resume`` continues, once the flags ``given`` are ones a resume
    takes."""
    refused = [flag for flag in given if flag not in (*RESUME_FLAGS, "--resume")]
    if refused:
        raise UsageError(f"--resume continues a run with its own settings: {', '.join(refused)} "
                         f"cannot be changed (only {', '.join(RESUME_FLAGS)})")
    run_dir = Path(args.resume)
    if run_dir.is_file():  # a twin's checkpoint, say: its run is the folder above the twin's
        twin_folder = run_dir.parent.name in BACKEND_NAMES
        folder = run_dir.parent.parent if twin_folder else run_dir.parent
        raise UsageError(f"--resume {run_dir}: a file; give the run folder ({folder})")
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run folder")
    return run_dir


def restart(args: argparse.Namespace, given: list[str], run_dir: Path) -> tuple[Run, Position]:
    """The run in ``run_dir`` (which this process holds) with its twins restored from their
    checkpoints, every one checked, and the position they continue from."""
    from compare.training.build import check_memory
    from compare.training.loop import Run
    from compare.training.twin import Twin, position_of

    saved = read_run(run_dir)
    meta = newest_meta(saved)
    saved = twins_at_one_position(run_dir, saved, meta["backends"])
    config = resumed_config(args, given, meta)
    check_epochs(run_dir, config, saved, meta["backends"])
    splits = load_run_data(next(iter(saved.values())).path, meta)
    check_memory(config, meta["backends"], len(splits.train_y))
    steps = steps_per_epoch(len(splits.train_y), config.batch_size)
    for found in saved.values():
        if at(found)[1] >= steps:
            raise CheckpointError(f"{found.path}: its position, step {at(found)[1]} of an epoch, "
                                  f"is past the {steps} steps of an epoch")
    twins = [Twin.restored(name, config, splits, saved[name]) if name in saved else
             Twin.new(name, config, splits) for name in meta["backends"]]
    start = position_of(next(iter(saved.values())))
    print(f"continuing {run_dir} (at epoch {start.epoch}, step {start.step}) to epoch "
          f"{config.epochs}", file=flags.output(args), flush=True)
    kept = {key: meta[key] for key in RUN_META_KEYS} | config.arch.to_meta()
    return Run(twins, config, splits, run_dir, kept | {"config": config.to_json()},
               meta["insight"], meta["lockstep"]), start


def check_epochs(run_dir: Path, config: TrainConfig, saved: dict[str, Checkpoint],
                 backends: list[str]) -> None:
    """The run must have epochs left to train and patience left (``--patience``), or an end to
    finish (a twin's summary missing)."""
    from compare.training.summary import has_summary

    done = max(at(found)[0] for found in saved.values())
    if done > config.epochs:
        raise UsageError(f"--epochs {config.epochs}: the run has already trained {done} epochs")
    if all(name in saved and has_summary(saved[name].path.parent) and
           early_stopping.out_of_patience(early_stopping.best_of(saved[name].meta)["best_epoch"],
                                          done, config.patience) for name in backends):
        raise UsageError(f"--resume {run_dir}: the run ran out of patience after epoch {done} "
                         f"(no better validation loss for {config.patience} epochs): nothing "
                         "left to train; its best epoch is in each twin's checkpoint-best")
    if all(name in saved and done == config.epochs and has_summary(saved[name].path.parent)
           for name in backends):
        raise UsageError(f"--resume {run_dir}: the run has already trained its {config.epochs} "
                         "epochs; pass --epochs with more to continue it")


def resumed_config(args: argparse.Namespace, given: list[str], meta: dict) -> TrainConfig:
    """The run's settings, with the new total of ``--epochs`` and the ``--device`` given."""
    saved = meta["config"]
    device = args.device if "--device" in given else saved["device"]
    return TrainConfig.from_json(saved | {
        "epochs": args.epochs if "--epochs" in given else saved["epochs"],
        "device": flags.resolve_device(device) if "torch" in meta["backends"] else "cpu"})
