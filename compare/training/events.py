"""A twin's TensorBoard events in ``<run>/<twin>/``: the settings, the epoch curves (``Loss/train``,
``Loss/val``, ``Accuracy/val``, ``Time/epoch_seconds``, ``GradNorm/<layer>``), the histograms
``Weights/<name>`` of the parameters and of batch norm's running estimates, the insight tags of
:mod:`compare.insight.log`, and at the end the summary of :mod:`compare.training.summary`. Both
twins write the same tags, so TensorBoard overlays them.

A resumed run writes no point that its folder already holds, so a run killed after an epoch's
events and before its checkpoint logs that epoch once.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from compare.insight.log import InsightLog, InsightSource, ratio_every, recorded_steps
from compare.insight.tensorboard_writer import SummaryWriter, written_points
from compare.training.backend import Backend, Evaluation
from compare.training.config import Position, TrainConfig
from compare.training.history import EpochRecord, History
from compare.training.summary import hparams_markdown, remove_unfinished, write_summary


class TwinEvents:
    """Writes one twin's events into ``folder``; ``insight`` (None: no insight) is what the
    insight tags show, the step curves taking every ``every``-th step. Use it as a context
    manager."""

    def __init__(self, folder: Path, config: TrainConfig, meta: dict, *, ended: bool,
                 insight: InsightSource | None, every: int) -> None:
        remove_unfinished(folder, ended=ended)
        self.folder, self.config, self.meta = folder, config, meta
        self.writer = SummaryWriter(folder, skip=written_points(folder))
        self.insight = None if insight is None else InsightLog(self.writer, insight)
        self.every = every

    def start(self, backend: Backend) -> None:
        """The untrained network's events: the settings as a text table and its pictures."""
        self.writer.add_text("hparams", hparams_markdown(self.config, self.meta))
        if self.insight:
            self.insight.start()
            self.insight.epoch(backend, 0, None)

    def epoch(self, backend: Backend, record: EpochRecord, validation: Evaluation | None
              ) -> None:
        """One epoch's curves and weight histograms, and its insight: the recorded steps' losses
        and gradient norms, and the pictures (from every layer's outputs on the validation set,
        when ``validation`` holds them)."""
        epoch = record.epoch
        self.writer.add_scalar("Loss/train", record.train_loss, epoch)
        if validation is not None:
            self.writer.add_scalar("Loss/val", validation.loss, epoch)
            self.writer.add_scalar("Accuracy/val", validation.accuracy, epoch)
        self.writer.add_scalar("Time/epoch_seconds", record.seconds, epoch)
        norms = backend.grad_norms()  # of the epoch's last step
        for name, norm in norms.items():
            self.writer.add_scalar(f"GradNorm/{name}", norm, epoch)
        for name, weight in backend.state_dict().items():
            if np.issubdtype(weight.dtype, np.floating):  # a count (num_batches_tracked) is none
                self.writer.add_histogram(f"Weights/{name}", weight, epoch)
        self.writer.flush()
        if self.insight:
            self.log_steps(record, list(norms))
            self.insight.epoch(backend, epoch, validation)

    def log_steps(self, record: EpochRecord, names: list[str]) -> None:
        """The epoch's per-step curves: the losses and gradient norms of every ``every``-th
        step, the update ratios of the steps :func:`ratio_every` spaces."""
        steps = len(record.step_losses)
        first = Position(record.epoch - 1).global_step(steps) + 1
        recorded = recorded_steps(first, steps, self.every)
        self.insight.steps(names, [first + i for i in recorded], record.step_losses[recorded],
                           record.grad_norms)
        measured = recorded_steps(first, steps, ratio_every(self.every))
        self.insight.update_ratios(names, [first + i for i in measured], record.update_ratios)

    def finish(self, history: History, test: Evaluation) -> None:
        """The summary of the run's end."""
        write_summary(self.folder, self.config, self.meta, history, test, self.insight)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.writer.close()
