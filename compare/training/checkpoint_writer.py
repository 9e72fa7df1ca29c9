"""Where a twin's checkpoint is written: ``<run>/<twin>/checkpoint.npz`` (scratch) or
``checkpoint.pt`` (torch), replaced whole at each save (:func:`checkpoint.write_atomically`).

A run of two twins keeps each twin's checkpoint before the last as ``checkpoint-previous``: the
twins save one after the other, so a run killed between their saves has one twin a position
ahead, whose previous checkpoint is where the other stands (``--resume`` takes it back).

A run with early stopping (``--patience``) also keeps the checkpoint of the twin's best epoch,
``checkpoint-best``, replaced whole whenever an epoch improves on it, before the last one is
saved: the best epoch the last checkpoint names is always the one ``checkpoint-best`` holds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from compare.training import early_stopping
from compare.training.backend import Backend
from compare.training.config import Position
from compare.training.history import History, StepRecords

BEST = "checkpoint-best"
"""The name (before its suffix) of the best epoch's checkpoint, kept with early stopping."""


class CheckpointWriter:
    """Saves one twin's checkpoints into ``folder``, each with the run's ``meta`` and where the
    twin stands; ``keep_previous`` keeps the one before (a run of two twins); ``keeps_best``
    (early stopping) records the best epoch in each and saves that epoch's own."""

    def __init__(self, folder: Path, suffix: str, meta: dict, *, keep_previous: bool,
                 keeps_best: bool = False) -> None:
        self.path = folder / f"checkpoint{suffix}"
        self.previous = folder / f"checkpoint-previous{suffix}"
        self.best = folder / f"{BEST}{suffix}"
        self.meta, self.keep_previous, self.keeps_best = meta, keep_previous, keeps_best
        for stale in folder.glob(".*.tmp"):  # half-written by a killed process
            stale.unlink()

    def save(self, backend: Backend, position: Position, records: StepRecords,
             history: History) -> None:
        """A checkpoint from which the run continues exactly at ``position``, with the
        ``records`` of the steps taken in its epoch and the seconds and last training loss of
        the epochs before (from ``history``)."""
        if self.keep_previous and self.path.exists():
            self.previous.unlink(missing_ok=True)
            os.link(self.path, self.previous)
        self.write(self.path, backend, position, records, history)

    def save_best(self, backend: Backend, position: Position, records: StepRecords,
                  history: History) -> None:
        """The checkpoint of the epoch just ended, the best so far, as ``checkpoint-best``."""
        self.write(self.best, backend, position, records, history)

    def write(self, path: Path, backend: Backend, position: Position, records: StepRecords,
              history: History) -> None:
        """The checkpoint :meth:`save` describes, at ``path``."""
        loss = history.train_loss
        meta = self.meta | {"backend": backend.name, "epoch": position.epoch,
                            "position": position.to_json(records.seconds),
                            "epoch_seconds": history.epoch_seconds,
                            "train_loss": None if math.isnan(loss) else loss}
        if self.keeps_best:
            meta[early_stopping.META_KEY] = early_stopping.to_meta(history, position.epoch)
        backend.save_checkpoint(path, meta, {"losses": records.losses,
                                             "grad_norms": records.grad_norms,
                                             "update_ratios": records.update_ratios})
