"""The training loop, shaped like pytorch/examples' mnist/main.py: ``train_epoch``, ``evaluate``,
``fit``. Either twin runs it through the Backend interface; both see one seeded permutation of
the training set per epoch, so from the same initial weights they see the same batches.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from compare.data import Splits
from compare.training.backend import Backend, Loader, build_backend
from compare.training.config import EpochOrders, TrainConfig, batch_bounds
from compare.training.run_log import BackendResult, RunLog, Validation
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
                progress: Progress) -> tuple[np.ndarray, float]:
    """One pass over the training set in ``order``: (the step losses, seconds it took)."""
    started = time.perf_counter()
    backend.start_epoch(len(batch_bounds(len(order), batch_size)))
    for x, y in loader.batches(order, batch_size):
        backend.train_step(x, y)
        progress.update()
    losses = backend.step_losses()
    seconds = time.perf_counter() - started
    progress.close()
    return losses, seconds


def evaluate(backend: Backend, x: np.ndarray, y: np.ndarray) -> Validation:
    """(mean cross-entropy, accuracy), or None for an empty split."""
    return backend.evaluate(x, y) if len(y) else None


def fit(backend: Backend, splits: Splits, config: TrainConfig, run: RunLog, quiet: bool
        ) -> BackendResult:
    """Train for ``config.epochs``, validating and checkpointing after every epoch."""
    loader = backend.loader(splits.train_x, splits.train_y)
    orders = EpochOrders(len(splits.train_y), config.seed)
    steps = len(batch_bounds(len(splits.train_y), config.batch_size))
    run.start(backend)
    for epoch in range(1, config.epochs + 1):
        backend.lr = config.lr_at(epoch - 1)
        progress = Progress(f"epoch {epoch}/{config.epochs}", steps, quiet)
        losses, seconds = train_epoch(backend, loader, orders.next(), config.batch_size, progress)
        run.end_epoch(backend, epoch, losses, seconds,
                      evaluate(backend, splits.val_x, splits.val_y))
    return run.finish(backend, backend.evaluate(splits.test_x, splits.test_y)[1])


def train(backend_names: list[str], config: TrainConfig, splits: Splits, run_dir: Path,
          meta: dict, *, log: Callable[[str], None] = print, quiet: bool = False
          ) -> list[BackendResult]:
    """Train each twin in turn from the same initial weights, under the BLAS thread policy for
    this batch size (``compare.training.threads``)."""
    results = []
    with blas_thread_policy(config.batch_size):
        for name in backend_names:
            backend = build_backend(name, config)
            with RunLog(backend, run_dir, config, meta, log) as run:
                results.append(fit(backend, splits, config, run, quiet))
    return results
