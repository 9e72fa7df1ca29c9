"""The training loop, shaped like pytorch/examples' mnist/main.py: ``train_epoch``, ``evaluate``,
``fit``. Either twin runs it through the Backend interface; both see one seeded permutation of
the training set per epoch, so from the same initial weights they see the same batches.

A run continues exactly from a checkpoint's :class:`~compare.training.config.Position`: the
same shuffle, from the next step, with the optimizer's state; Ctrl-C stops it at the end of the
current step with such a checkpoint written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from compare.data import Splits
from compare.errors import InterruptionError
from compare.training.backend import Backend, Evaluation, Loader, build_backend
from compare.training.checkpoint import Checkpoint
from compare.training.config import EpochOrders, Position, TrainConfig, batch_bounds
from compare.training.interrupt import StopRequest
from compare.training.run_log import BackendResult, RunLog
from compare.training.threads import blas_thread_policy


class Progress:
    """A tqdm bar per epoch on a terminal; otherwise nothing until the epoch's one line."""

    def __init__(self, label: str, steps: int, quiet: bool) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=label, leave=False, unit="step")

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_epoch(backend: Backend, loader: Loader, order: np.ndarray, batch_size: int,
                progress: Progress, *, first_step: int = 0, stop: StopRequest | None = None,
                norm_steps: Sequence[int] = ()) -> tuple[np.ndarray, float]:
    """One pass over the training set in ``order``, from batch ``first_step`` on, or until
    ``stop`` is requested: (the losses of the steps taken, the seconds they took). The steps at
    positions ``norm_steps`` (counted from ``first_step``) record their gradient norms."""
    started = time.perf_counter()
    backend.start_epoch(len(batch_bounds(len(order), batch_size)) - first_step, norm_steps)
    try:
        for x, y in loader.batches(order, batch_size, first_step):
            backend.train_step(x, y)
            progress.update()
            if stop is not None and stop.requested:
                break
        losses = backend.step_losses()  # the epoch's one read from the device
        return losses, time.perf_counter() - started
    finally:
        progress.close()


def evaluate(backend: Backend, x: np.ndarray, y: np.ndarray, *, keep_outputs: bool = False
             ) -> Evaluation | None:
    """The backend's evaluation of x, y, or None for an empty split."""
    return backend.evaluate(x, y, keep_outputs=keep_outputs) if len(y) else None


def remaining_epochs(position: Position, config: TrainConfig, orders: EpochOrders
                     ) -> Iterator[tuple[Position, np.ndarray]]:
    """For each epoch still to train, where it begins (epochs done, steps already taken in it,
    the shuffle state before it, those steps' losses and seconds) and its sample order."""
    for done in range(position.epoch, config.epochs):
        first = done == position.epoch
        begun = (Position(done, position.step, orders.state(), position.losses, position.seconds,
                          position.grad_norms) if first else Position(done, 0, orders.state()))
        yield begun, orders.next()


def close_epoch(run: RunLog, backend: Backend, splits: Splits, begun: Position,
                losses: np.ndarray, seconds: float, next_shuffle_state: dict) -> bool:
    """Validate, log and checkpoint the epoch after ``begun``, now that ``backend`` took its
    remaining steps (their ``losses``, in ``seconds``); False (after checkpointing where it
    stopped) when Ctrl-C cut it short."""
    losses = np.concatenate([begun.losses, losses])
    norms = backend.step_grad_norms()
    norms = np.concatenate([begun.grad_norms, norms]) if len(begun.grad_norms) else norms
    seconds += begun.seconds
    if len(losses) < len(batch_bounds(len(splits.train_y), run.config.batch_size)):
        run.save(backend, Position(begun.epoch, len(losses), begun.shuffle_state, losses, seconds,
                                   norms))
        return False
    validation = evaluate(backend, splits.val_x, splits.val_y,
                          keep_outputs=run.insight is not None)
    run.end_epoch(backend, begun.epoch + 1, losses, norms, seconds, validation,
                  Position(begun.epoch + 1, 0, next_shuffle_state))
    return True


def fit(backend: Backend, splits: Splits, config: TrainConfig, run: RunLog, *,
        position: Position, stop: StopRequest, quiet: bool = False) -> BackendResult:
    """Train from ``position`` to ``config.epochs``, validating and checkpointing after every
    epoch; on Ctrl-C, checkpoint the position reached and raise InterruptionError."""
    loader = backend.loader(splits.train_x, splits.train_y)
    orders = EpochOrders(len(splits.train_y), config.seed, position.shuffle_state)
    steps = len(batch_bounds(len(splits.train_y), config.batch_size))
    for begun, order in remaining_epochs(position, config, orders):
        backend.lr = config.lr_at(begun.epoch)
        progress = Progress(f"epoch {begun.epoch + 1}/{config.epochs}", steps - begun.step, quiet)
        losses, seconds = train_epoch(backend, loader, order, config.batch_size, progress,
                                 first_step=begun.step, stop=stop,
                                 norm_steps=run.recorded_steps(begun.epoch * steps + begun.step,
                                                               steps - begun.step))
        closed = close_epoch(run, backend, splits, begun, losses, seconds, orders.state())
        if not closed or (stop.requested and begun.epoch + 1 < config.epochs):
            raise InterruptionError(f"{backend.name} stopped by Ctrl-C in epoch "
                                    f"{begun.epoch + 1}; checkpoint {run.checkpoint}")
    return run.finish(backend, evaluate(backend, splits.test_x, splits.test_y,
                                        keep_outputs=run.insight is not None))


def resume_command(run_dir: Path) -> str:
    return f"python -m compare train --resume {run_dir}"


def train(backend_names: list[str], config: TrainConfig, splits: Splits, run_dir: Path,
          meta: dict, *, log: Callable[[str], None] = print, quiet: bool = False,
          saved: dict[str, Checkpoint] | None = None, insight: bool = True
          ) -> list[BackendResult]:
    """Train each twin in turn from the same initial weights, or continue each from its
    checkpoint in ``saved``, under the BLAS thread policy for this batch size; ``insight``
    adds the pictures and per-step curves of :mod:`compare.insight.log`."""
    results = []
    steps = len(batch_bounds(len(splits.train_y), config.batch_size))
    with blas_thread_policy(config.batch_size), StopRequest() as stop:
        for name in backend_names:
            checkpoint = (saved or {}).get(name)
            backend = build_backend(name, config, checkpoint, steps_per_epoch=steps)
            with RunLog(backend, run_dir, config, meta, log,
                        checkpoint.meta if checkpoint else None,
                        splits if insight else None) as run:
                position = start_position(run, backend, checkpoint)
                try:
                    results.append(fit(backend, splits, config, run, position=position,
                                       stop=stop, quiet=quiet))
                except InterruptionError as interrupted:
                    raise InterruptionError(f"{interrupted}; resume with: {resume_command(run_dir)}"
                                      ) from None
    return results


def start_position(run: RunLog, backend: Backend, checkpoint: Checkpoint | None) -> Position:
    """Where ``backend`` starts: the checkpoint's position, or epoch 0 (checkpointed now). The
    untrained network's events are logged at epoch 0 (again after a kill: none is repeated)."""
    if checkpoint is None:
        run.save(backend, Position())
        position = Position()
    else:
        saved, records = checkpoint.meta["position"], checkpoint.progress
        position = Position(saved["epoch"], saved["step"], saved["shuffle_state"],
                            records.get("losses", np.zeros(0)), saved["seconds"],
                            records.get("grad_norms", np.zeros((0, 0))))
        run.saved = position
    if position.epoch == position.step == 0:
        run.start(backend)
    return position
