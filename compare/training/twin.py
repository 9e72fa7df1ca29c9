"""One twin in a training run: its backend, its training set where it computes, what it has
recorded, and (when the run has a folder) where its checkpoints and events go."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from compare.data import Splits
from compare.insight.log import log_every, ratio_every, recorded_steps
from compare.training import early_stopping
from compare.training.backend import Backend, Evaluation, Loader
from compare.training.build import build_backend, restore_backend
from compare.training.checkpoint import Checkpoint, CheckpointError
from compare.training.checkpoint_writer import CheckpointWriter
from compare.training.config import Position, TrainConfig, steps_per_epoch
from compare.training.events import TwinEvents
from compare.training.history import EpochRecord, History, StepRecords, no_rows


@dataclass
class Twin:
    """``backend`` with ``loader`` (its training set), the ``history`` of its run, the
    ``records`` of the epoch under way, and ``saved``: where its checkpoint on disk stands (None
    before its first). ``checkpoints`` and ``events`` are set while a run with a folder trains."""

    backend: Backend
    loader: Loader
    history: History
    records: StepRecords = field(default_factory=StepRecords)
    saved: Position | None = None
    checkpoints: CheckpointWriter | None = None
    events: TwinEvents | None = None

    @classmethod
    def new(cls, name: str, config: TrainConfig, splits: Splits) -> Twin:
        """The twin ``name`` with the initial weights of ``config.seed``."""
        backend = build_backend(name, config)
        return cls(backend, backend.loader(splits.train_x, splits.train_y),
                   History(name, str(backend.device)))

    @classmethod
    def restored(cls, name: str, config: TrainConfig, splits: Splits, saved: Checkpoint
                 ) -> Twin:
        """The twin ``name`` as its checkpoint ``saved`` left it: weights, optimizer state and
        records, checked (CheckpointError naming the file)."""
        position = position_of(saved)
        steps = steps_per_epoch(len(splits.train_y), config.batch_size)
        records = restored_records(saved, position, steps)
        backend = restore_backend(name, config, saved, position.global_step(steps))
        loss = saved.meta.get("train_loss")
        history = History(name, str(backend.device), earlier_seconds=saved.meta["epoch_seconds"],
                          earlier_train_loss=math.nan if loss is None else float(loss),
                          **early_stopping.best_of(saved.meta))
        return cls(backend, backend.loader(splits.train_x, splits.train_y), history, records,
                   position)

    @property
    def name(self) -> str:
        return self.backend.name

    def take_records(self) -> None:
        """Add the steps the backend took since ``start_epoch`` (their losses, read back from
        the device: on CUDA, the epoch's one synchronisation) to the epoch's records; the loop
        adds their seconds."""
        self.records = self.records.extended(self.backend.step_losses(),
                                             self.backend.step_grad_norms(),
                                             self.backend.step_update_ratios())

    def log_epoch(self, epoch: int, validation: Evaluation | None) -> EpochRecord:
        """The epoch's record, now that all its steps are taken: kept in the history and logged
        to the twin's events; the next epoch's records start empty."""
        records = self.records
        kept = None if validation is None else Evaluation(validation.loss, validation.accuracy)
        record = EpochRecord(epoch, float(records.losses.mean()), kept, records.seconds,
                             records.losses, records.grad_norms, records.update_ratios)
        self.history.epochs.append(record)
        self.records = StepRecords()
        if self.events is not None:
            self.events.epoch(self.backend, record, validation)
        return record

    def save(self, position: Position) -> None:
        """A checkpoint at ``position`` (with the epoch's records), when the run has a folder."""
        if self.checkpoints is not None:
            self.checkpoints.save(self.backend, position, self.records, self.history)
            self.saved = position

    def save_best(self, position: Position) -> None:
        """The checkpoint of the epoch that ends at ``position``, the best so far, when the run
        has a folder (before :meth:`save` of that position)."""
        if self.checkpoints is not None:
            self.checkpoints.save_best(self.backend, position, self.records, self.history)


def position_of(saved: Checkpoint) -> Position:
    """Where the run that wrote the checkpoint ``saved`` continues from."""
    position = saved.meta["position"]
    return Position(position["epoch"], position["step"], position["shuffle_state"])



def restored_records(saved: Checkpoint, position: Position, steps: int) -> StepRecords:
    """The records of the epoch under way in ``saved`` (epochs of ``steps`` steps): a loss for
    each of the ``position.step`` steps taken, gradient norms at the recorded ones and update
    ratios at the measured ones (:mod:`compare.insight.log`), one row each. The versions that
    measured the ratios at every recorded step saved a row for each: the rows of the measured
    steps are kept. Any other count is a CheckpointError naming the file and the array."""
    every = log_every(steps) if saved.meta["insight"] else 0
    first = Position(position.epoch).global_step(steps) + 1
    recorded = recorded_steps(first, position.step, every)
    measured = recorded_steps(first, position.step, ratio_every(every))
    norms = saved.progress["grad_norms"]
    ratios = saved.progress.get("update_ratios", no_rows())
    if len(ratios) == len(recorded) != len(measured):
        ratios = ratios[[recorded.index(step) for step in measured]]
    for name, rows, steps_recorded in (("grad_norms", norms, recorded),
                                       ("update_ratios", ratios, measured)):
        if len(rows) != len(steps_recorded):
            raise CheckpointError(
                f"{saved.path}: progress/{name} holds {len(rows)} rows, but the "
                f"{position.step} steps taken of epoch {position.epoch + 1} recorded "
                f"{len(steps_recorded)}")
    return StepRecords(saved.progress["losses"], norms, saved.meta["position"]["seconds"],
                       ratios)
