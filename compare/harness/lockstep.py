"""Lockstep: both twins from the same weights on the same batches, compared after every step.

``optimizer_lockstep`` measures how far the optimizers drift apart on random batches;
``train_lockstep`` is ``compare train --lockstep``: the training loop's pieces, stepped together,
with the comparison logged to ``runs/<run-name>/parity/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np

from compare.data import Splits
from compare.errors import InterruptionError
from compare.harness import tolerance
from compare.harness.arch import Architecture, parse_dtype
from compare.training.backend import BACKEND_NAMES, Backend, Loader, build_backend
from compare.training.checkpoint import Checkpoint
from compare.training.config import EpochOrders, Position, TrainConfig, batch_bounds
from compare.training.interrupt import StopRequest
from compare.training.loop import (
    close_epoch,
    evaluate,
    remaining_epochs,
    resume_command,
    start_position,
)
from compare.training.optimizers import OptimizerSpec
from compare.training.run_log import BackendResult, RunLog, TrainingError
from compare.training.tensorboard_writer import SummaryWriter, written_points
from compare.training.threads import blas_thread_policy


def optimizer_lockstep(arch: Architecture, optimizer: OptimizerSpec, *, steps: int,
                       dtype: str = "float64", batch_size: int = 32, seed: int = 0
                       ) -> list[float]:
    """Run ``steps`` optimizer steps in both twins from copied weights on the same random batches;
    return the weights' relative difference after every step."""
    config = TrainConfig(arch, optimizer, 1, batch_size, seed, dtype, "cpu")
    backends = [build_backend(name, config) for name in BACKEND_NAMES]
    rng = np.random.default_rng([seed, 2])
    x = rng.standard_normal((steps * batch_size, arch.widths[0])).astype(parse_dtype(dtype))
    y = rng.integers(0, arch.widths[-1], size=steps * batch_size)
    batches = zip(*(b.loader(x, y).batches(np.arange(len(y)), batch_size) for b in backends),
                  strict=True)
    for backend in backends:
        backend.start_epoch(steps)
    diffs = []
    for step_batches in batches:
        for backend, (batch_x, batch_y) in zip(backends, step_batches, strict=True):
            backend.train_step(batch_x, batch_y)
        diffs.append(tolerance.state_rel_diff(backends[0].state_dict(), backends[1].state_dict()))
    return diffs


def compare_step(backends: list[Backend], parity: SummaryWriter, step: int, config: TrainConfig
                 ) -> None:
    """Log how far apart the twins are after global step ``step``; in float64, stop when over
    the limit."""
    scratch_backend, torch_backend = backends
    weight_diff = tolerance.state_rel_diff(scratch_backend.state_dict(), torch_backend.state_dict())
    loss_diff = abs(float(scratch_backend.step_losses()[-1]) -
                    float(torch_backend.step_losses()[-1]))
    parity.add_scalar("Parity/max_weight_rel_diff", weight_diff, step)
    parity.add_scalar("Parity/loss_abs_diff", loss_diff, step)
    limit = tolerance.TRAINING_LOCKSTEP_FLOAT64_MAX_REL
    if config.dtype == "float64" and not weight_diff <= limit:
        raise TrainingError(
            f"--lockstep: after step {step} (lr {scratch_backend.lr:g}) the float64 weights "
            f"differ by {weight_diff:.3e} relative, over the limit {limit:g}")


def lockstep_epoch(backends: list[Backend], loaders: list[Loader], order: np.ndarray,
                   config: TrainConfig, parity: SummaryWriter, begun: Position,
                   stop: StopRequest, norm_steps_of: list[list[int]]) -> list[float]:
    """The rest of an epoch of both twins, step by step, until the end or ``stop``; the seconds
    each twin spent on its own steps."""
    steps = len(batch_bounds(len(order), config.batch_size))
    seconds = [0.0 for _ in backends]
    for backend, norm_steps in zip(backends, norm_steps_of, strict=True):
        backend.start_epoch(steps - begun.step, norm_steps)
    batches = zip(*(loader.batches(order, config.batch_size, begun.step) for loader in loaders),
                  strict=True)
    for step, step_batches in enumerate(batches, start=begun.epoch * steps + begun.step + 1):
        for index, (backend, (x, y)) in enumerate(zip(backends, step_batches, strict=True)):
            started = time.perf_counter()
            backend.train_step(x, y)
            seconds[index] += time.perf_counter() - started
        compare_step(backends, parity, step, config)
        if stop.requested:
            break
    return seconds


def own_records(begun: Position, positions: list[Position]) -> list[Position]:
    """``begun`` for each twin; in the epoch a resumed run continues (the one its ``positions``
    are in), with that twin's own records of the steps it had taken."""
    return [begun if begun.epoch > own.epoch else replace(
        begun, losses=own.losses, grad_norms=own.grad_norms, seconds=own.seconds)
        for own in positions]


def train_lockstep(config: TrainConfig, splits: Splits, run_dir: Path, meta: dict, *,
                   log: Callable[[str], None] = print, saved: dict[str, Checkpoint] | None = None,
                   insight: bool = True) -> list[BackendResult]:
    """Train both twins together (or continue them from their checkpoints in ``saved``),
    comparing them after every step; each twin's events and checkpoints are those a training
    run writes."""
    saved = saved or {}
    steps = len(batch_bounds(len(splits.train_y), config.batch_size))
    backends = [build_backend(name, config, saved.get(name), steps_per_epoch=steps)
                for name in BACKEND_NAMES]
    loaders = [backend.loader(splits.train_x, splits.train_y) for backend in backends]
    with ExitStack() as stack:
        stack.enter_context(blas_thread_policy(config.batch_size))
        stop = stack.enter_context(StopRequest())
        runs = [stack.enter_context(RunLog(backend, run_dir, config, meta, log,
                                           getattr(saved.get(backend.name), "meta", None),
                                           splits if insight else None))
                for backend in backends]
        parity = stack.enter_context(SummaryWriter(
            run_dir / "parity", skip=written_points(run_dir / "parity")))
        positions = [start_position(run, b, saved.get(b.name))
                     for b, run in zip(backends, runs, strict=True)]
        position = positions[0]  # the twins' checkpoints describe one position (see resume)
        orders = EpochOrders(len(splits.train_y), config.seed, position.shuffle_state)
        for begun, order in remaining_epochs(position, config, orders):
            for backend in backends:
                backend.lr = config.lr_at(begun.epoch)
            done = begun.epoch * steps + begun.step
            seconds = lockstep_epoch(backends, loaders, order, config, parity, begun, stop,
                                     [run.recorded_steps(done, steps - begun.step)
                                      for run in runs])
            closed = [close_epoch(run, backend, splits, own, backend.step_losses(), spent,
                                  orders.state()) for backend, run, own, spent in
                      zip(backends, runs, own_records(begun, positions), seconds, strict=True)]
            if not all(closed) or (stop.requested and begun.epoch + 1 < config.epochs):
                raise InterruptionError(
                    f"stopped by Ctrl-C in epoch {begun.epoch + 1}; checkpoints in {run_dir}; "
                    f"resume with: {resume_command(run_dir)}")
        return [run.finish(backend, evaluate(backend, splits.test_x, splits.test_y,
                                             keep_outputs=run.insight is not None))
                for backend, run in zip(backends, runs, strict=True)]
