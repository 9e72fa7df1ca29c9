"""What a run measured, per twin, kept in memory: each epoch's losses, validation and seconds, and
the test at the end. ``compare.fit`` returns it, the lessons read it, ``--json`` prints it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from compare.training.backend import Evaluation


def no_rows() -> np.ndarray:
    """(0 recorded steps, 0 layers): the records of no step."""
    return np.zeros((0, 0))


def stacked(rows: np.ndarray, more: np.ndarray) -> np.ndarray:
    """Recorded steps' rows followed by ``more`` (either may have none)."""
    return np.concatenate([rows, more]) if len(rows) else more


@dataclass
class StepRecords:
    """What the steps of the epoch under way recorded so far: each step's loss (steps,), the
    weight-gradient norms and update ratios of the recorded ones (recorded steps, Linear
    layers, each), their seconds."""

    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grad_norms: np.ndarray = field(default_factory=no_rows)
    seconds: float = 0.0
    update_ratios: np.ndarray = field(default_factory=no_rows)

    def extended(self, losses: np.ndarray, grad_norms: np.ndarray, update_ratios: np.ndarray
                 ) -> StepRecords:
        """These records followed by those of more steps (their seconds the loop adds)."""
        return StepRecords(np.concatenate([self.losses, losses]),
                           stacked(self.grad_norms, grad_norms), self.seconds,
                           stacked(self.update_ratios, update_ratios))


@dataclass
class EpochRecord:
    """One epoch of one twin: ``epoch`` (1-based), the mean of its step losses, the validation
    (None without a validation split), its seconds, every step's loss (steps,) and the recorded
    steps' weight-gradient norms and update ratios (log10 std(update) / std(weight)), each
    (recorded steps, Linear layers)."""

    epoch: int
    train_loss: float
    validation: Evaluation | None
    seconds: float
    step_losses: np.ndarray = field(repr=False)
    grad_norms: np.ndarray = field(repr=False)
    update_ratios: np.ndarray = field(repr=False, default_factory=no_rows)


@dataclass
class History:
    """One twin's run: ``backend`` (``"scratch"`` or ``"torch"``) on ``device``, the epochs it
    trained in this process, and its ``test`` evaluation after the last epoch (None until then).

    A resumed run also has what its checkpoint kept of the epochs before: their seconds
    (``earlier_seconds``) and the last one's training loss (``earlier_train_loss``).

    With early stopping (``patience``), ``best_epoch`` (1-based) is the epoch of the lowest
    validation loss so far, ``best_val_loss``, over the whole run (None before its first epoch,
    and without early stopping); ``stopped_early`` says the run ended before its last epoch
    because its validation loss stopped improving.
    """

    backend: str
    device: str
    epochs: list[EpochRecord] = field(default_factory=list)
    test: Evaluation | None = None
    run_dir: str | None = None  # the twin's folder; None when nothing was written
    earlier_seconds: list[float] = field(default_factory=list)
    earlier_train_loss: float = math.nan
    best_epoch: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False

    @property
    def epoch_seconds(self) -> list[float]:
        """The seconds of every epoch of the run, the earlier ones first."""
        return [*self.earlier_seconds, *(record.seconds for record in self.epochs)]

    @property
    def train_loss(self) -> float:
        """The last epoch's training loss (NaN before any)."""
        return self.epochs[-1].train_loss if self.epochs else self.earlier_train_loss

    def to_json(self) -> str:
        """The line ``compare train --json`` prints for this twin."""
        return json.dumps({"backend": self.backend, "device": self.device,
                           "test_accuracy": self.test.accuracy if self.test else None,
                           "final_train_loss": self.train_loss,
                           "epoch_seconds": self.epoch_seconds, "run_dir": self.run_dir,
                           "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                           "stopped_early": self.stopped_early},
                          allow_nan=False)
