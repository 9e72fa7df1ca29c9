"""The training loop, for one twin or both: on each batch every twin being trained takes its step
in turn (scratch, then torch), so the twins always stand at one position of the run, and under
``--lockstep`` they are compared after every step. Both see one seeded permutation of the
training set per epoch, so from the same initial weights they see the same batches. An epoch
ends in three calls: check (finite or stop), log, checkpoint.

A run continues exactly from its checkpoints' :class:`~compare.training.config.Position`: the
same shuffle, from the next step, with the optimizers' state. Ctrl-C stops it at the end of the
current step, every twin checkpointed there. With early stopping (``patience``) the run ends
sooner, after the epoch at which every twin is out of patience
(:mod:`compare.training.early_stopping`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from compare.data import Splits
from compare.errors import InterruptionError
from compare.harness.masks import shared_masks
from compare.insight.log import InsightSource, log_every, ratio_every, recorded_steps
from compare.training import early_stopping
from compare.training.backend import Backend, Evaluation
from compare.training.build import initial_state
from compare.training.checkpoint_writer import CheckpointWriter
from compare.training.config import (
    BEGINNING,
    EpochOrders,
    Position,
    TrainConfig,
    steps_per_epoch,
)
from compare.training.console import (
    best_line,
    epoch_line,
    progress_bar,
    stopped_early_line,
    test_line,
)
from compare.training.divergence import TrainingError, stop_if_not_finite
from compare.training.events import TwinEvents
from compare.training.history import History
from compare.training.interrupt import StopRequest
from compare.training.lockstep import Lockstep
from compare.training.threads import blas_thread_policy
from compare.training.twin import Twin


def discard(line: str) -> None:
    """Where a run's console lines go when nobody reads them."""


@dataclass
class Run:
    """What :func:`train` trains: ``twins`` (one or both) on ``splits`` with ``config``, writing
    into ``folder`` (``<folder>/<twin>/``, each checkpoint with ``meta``; None: nothing is
    written). ``insight`` records per-step curves and pictures, ``lockstep`` compares the twins
    after every step; ``log`` takes the console lines, ``show_progress`` draws a bar on a
    terminal."""

    twins: list[Twin]
    config: TrainConfig
    splits: Splits
    folder: Path | None = None
    meta: dict = field(default_factory=dict)
    insight: bool = True
    lockstep: bool = False
    log: Callable[[str], None] = discard
    show_progress: bool = False

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.splits.train_y), self.config.batch_size)

    @property
    def recording_interval(self) -> int:
        """k: the insight's per-step curves take every k-th step (0: none)."""
        return log_every(self.steps_per_epoch) if self.insight else 0

    @property
    def draws_pictures(self) -> bool:
        """Whether insight pictures are drawn (they need every layer's outputs)."""
        return self.insight and self.folder is not None


@dataclass
class StepLoop:
    """Steps ``twins`` through the batches of an epoch: on each batch every twin in turn, then
    ``compare`` (--lockstep) sees them with the global step, until the epoch ends or ``stop``
    is requested."""

    twins: Sequence[Twin]
    batch_size: int
    stop: StopRequest | None = None
    compare: Callable[[list[Backend], int], None] | None = None

    def epoch(self, order: np.ndarray, position: Position = BEGINNING,
              recorded: tuple[Sequence[int], Sequence[int]] = ((), ()), bar: Any = None) -> int:
        """The steps of the epoch in ``order`` from ``position`` on; how many were taken. Each
        twin's records gain the steps' losses, the gradient norms and the update ratios of those
        at ``recorded`` (two lists of positions, 0-based, counted from ``position``) and the
        seconds: a twin trained alone has the epoch's, twins trained together each the time of
        its own steps."""
        steps = steps_per_epoch(len(order), self.batch_size)
        batches = []
        for twin in self.twins:
            twin.backend.start_epoch(steps - position.step, *recorded)
            batches.append(twin.loader.batches(order, self.batch_size, position.step))
        alone = len(self.twins) == 1
        clock = float if alone else time.perf_counter  # alone: float() is 0, the epoch is timed
        seconds = [0.0 for _ in self.twins]
        started, taken = time.perf_counter(), 0
        last = Position(position.epoch + 1).global_step(steps)
        for step in range(position.global_step(steps) + 1, last + 1):
            for index, twin in enumerate(self.twins):
                began = clock()
                twin.backend.train_step(*next(batches[index]))
                seconds[index] += clock() - began
            taken += 1
            if bar is not None:
                bar.update()
            if self.compare is not None:
                self.compare([twin.backend for twin in self.twins], step)
            if self.stop is not None and self.stop.requested:
                break
        for index, twin in enumerate(self.twins):  # reading the losses waits for the device
            began = clock()
            twin.take_records()
            seconds[index] += clock() - began
        for twin, spent in zip(self.twins, [time.perf_counter() - started] if alone else seconds,
                               strict=True):
            twin.records.seconds += spent
        return taken


def evaluate(backend: Backend, x: np.ndarray, y: np.ndarray, *, keep_outputs: bool = False
             ) -> Evaluation | None:
    """The backend's evaluation of x, y, or None for an empty split."""
    return backend.evaluate(x, y, keep_outputs=keep_outputs) if len(y) else None


def run_is_over(run: Run, epochs_done: int) -> bool:
    """Whether the run, ``epochs_done`` epochs in, has trained all its epochs or (early
    stopping) has every twin out of patience."""
    return epochs_done >= run.config.epochs or all(
        early_stopping.out_of_patience(twin.history.best_epoch, epochs_done, run.config.patience)
        for twin in run.twins)


def run_epochs(run: Run, loop: StepLoop, start: Position) -> None:
    """Train from ``start`` to the run's last epoch, or to the end of the epoch that runs the
    twins out of patience; on Ctrl-C, checkpoint the position reached and raise
    InterruptionError."""
    config, steps, every = run.config, run.steps_per_epoch, run.recording_interval
    orders = EpochOrders(len(run.splits.train_y), config.seed, start.shuffle_state)
    position = start
    while not run_is_over(run, position.epoch):
        position = replace(position, shuffle_state=orders.state())  # None at the beginning
        order = orders.next()
        for twin in run.twins:
            twin.backend.lr = config.lr_at(position.epoch)
        first, left = position.global_step(steps) + 1, steps - position.step
        recorded = (recorded_steps(first, left, every),
                    recorded_steps(first, left, ratio_every(every)))
        bar = progress_bar(f"epoch {position.epoch + 1}/{config.epochs}", steps - position.step,
                           not run.show_progress)
        try:
            taken = loop.epoch(order, position, recorded, bar)
        finally:
            if bar is not None:
                bar.close()
        position = replace(position, step=position.step + taken)
        if position.step < steps:
            for twin in run.twins:
                twin.save(position)
            raise stopped(run, position.epoch + 1)
        position = end_epoch(run, position, orders.state())
        if loop.stop is not None and loop.stop.requested and not run_is_over(run, position.epoch):
            raise stopped(run, position.epoch)
    if position.epoch < config.epochs:
        for twin in run.twins:
            twin.history.stopped_early = True
        run.log(stopped_early_line(position.epoch, config.epochs, config.patience))


def end_epoch(run: Run, position: Position, next_shuffle_state: dict) -> Position:
    """The end of the epoch at ``position`` (all its steps taken): check, log, checkpoint (with
    early stopping, first that of an epoch better than the best); the position the run goes on
    from."""
    validations = [evaluate(twin.backend, run.splits.val_x, run.splits.val_y,
                            keep_outputs=run.draws_pictures) for twin in run.twins]
    for twin, validation in zip(run.twins, validations, strict=True):  # check
        stop_if_not_finite(twin, position.epoch, validation)
    for twin, validation in zip(run.twins, validations, strict=True):  # log
        record = twin.log_epoch(position.epoch + 1, validation)
        run.log(epoch_line(twin.name, record, run.config.epochs, twin.backend.lr))
    following = Position(position.epoch + 1, 0, next_shuffle_state)
    for twin, validation in zip(run.twins, validations, strict=True):  # checkpoint
        if run.config.patience is not None and early_stopping.record(
                twin.history, following.epoch, validation.loss):
            twin.save_best(following)
        twin.save(following)
    return following


def stopped(run: Run, epoch: int) -> InterruptionError:
    """Ctrl-C stopped the run in ``epoch`` (1-based)."""
    saved = "" if run.folder is None else f"; checkpoints in {run.folder}"
    return InterruptionError(f"stopped by Ctrl-C in epoch {epoch}{saved}")


def open_folders(run: Run, start: Position, stack: ExitStack) -> None:
    """Each twin's checkpoint writer and events in ``<folder>/<twin>/`` (entered in ``stack``);
    a twin without a checkpoint saves one at ``start``; at the run's start, the untrained
    networks' events."""
    if run.folder is None:
        return
    insight = None
    if run.insight:
        insight = InsightSource(run.splits, initial_state(run.config)["0.weight"])
    for twin in run.twins:
        folder = run.folder / twin.name
        folder.mkdir(exist_ok=True)
        twin.checkpoints = CheckpointWriter(folder, twin.backend.checkpoint_suffix, run.meta,
                                            keep_previous=len(run.twins) > 1,
                                            keeps_best=run.config.patience is not None)
        twin.events = stack.enter_context(TwinEvents(
            folder, run.config, run.meta, ended=run_is_over(run, start.epoch),
            insight=insight, every=run.recording_interval))
        if twin.saved is None:
            twin.save(start)
        if (start.epoch, start.step) == (0, 0):
            twin.events.start(twin.backend)


def finish(run: Run, twin: Twin) -> History:
    """The twin's test evaluation, summary and last line."""
    test = evaluate(twin.backend, run.splits.test_x, run.splits.test_y,
                    keep_outputs=run.draws_pictures)
    if not np.isfinite(test.loss):
        kept = ("" if twin.checkpoints is None else
                f"; the checkpoint is kept at {twin.checkpoints.path}")
        raise TrainingError(f"{twin.name}: the test loss is {test.loss} after epoch "
                            f"{len(twin.history.epoch_seconds)}{kept}")
    if twin.events is not None:
        twin.events.finish(twin.history, test)
    twin.history.test = Evaluation(test.loss, test.accuracy)
    twin.history.run_dir = None if twin.checkpoints is None else str(twin.checkpoints.path.parent)
    run.log(test_line(twin.name, test.accuracy))
    if twin.history.best_epoch is not None:
        run.log(best_line(twin.name, twin.history,
                          None if twin.checkpoints is None else twin.checkpoints.best))
    return twin.history


def train(run: Run, start: Position = BEGINNING, stop: StopRequest | None = None
          ) -> list[History]:
    """Train the run's twins together from ``start`` (where their checkpoints stand, or the
    beginning) to its last epoch, then test them; each twin's history. Runs under the BLAS
    thread policy of its batch size; Ctrl-C stops it at the end of a step (InterruptionError),
    watched by ``stop`` (by default, a request of its own while it trains). Twins trained
    together apply the same dropout masks, the scratch twin's (:mod:`compare.harness.masks`)."""
    with ExitStack() as stack:
        stack.enter_context(blas_thread_policy(run.config.batch_size))
        stop = stop or stack.enter_context(StopRequest())
        open_folders(run, start, stack)
        models = {twin.name: twin.backend.model for twin in run.twins}
        if models.keys() == {"scratch", "torch"}:  # scratch steps first, torch applies its masks
            stack.enter_context(shared_masks(models["scratch"], models["torch"]))
        compare = None
        if run.lockstep:
            compare = stack.enter_context(Lockstep(
                None if run.folder is None else run.folder / "parity", run.config.dtype))
        run_epochs(run, StepLoop(run.twins, run.config.batch_size, stop, compare), start)
        return [finish(run, twin) for twin in run.twins]
