"""Finite or stop: after every epoch each twin's step losses, weights and validation loss must be
finite; a NaN or inf stops the run naming the twin, the epoch, the step and the learning rate."""

from __future__ import annotations

import math

import numpy as np

from compare.errors import CheckError
from compare.training.backend import Evaluation
from compare.training.config import Position
from compare.training.history import EpochRecord
from compare.training.twin import Twin


class TrainingError(CheckError):
    """Training stopped: a non-finite value (or, :mod:`compare.training.lockstep`, twins that
    drifted apart)."""


class DivergenceError(TrainingError):
    """A loss, a weight or the validation loss of ``backend`` stopped being finite at global
    ``step``; ``history`` holds its epochs before."""

    def __init__(self, message: str, backend: str, step: int, history: list[EpochRecord]
                 ) -> None:
        super().__init__(message)
        self.backend, self.step, self.history = backend, step, history


def stop_if_not_finite(twin: Twin, epoch: int, validation: Evaluation | None) -> None:
    """DivergenceError unless the step losses of ``twin``'s epoch ``epoch`` (0-based, all its
    steps taken), its weights and its ``validation`` loss are all finite."""
    losses = twin.records.losses
    steps = len(losses)
    bad_steps = np.flatnonzero(~np.isfinite(losses))
    if bad_steps.size:
        what, step = f"the loss is {losses[bad_steps[0]]}", int(bad_steps[0]) + 1
    elif not all(np.all(np.isfinite(w)) for w in twin.backend.state_dict().values()):
        what, step = "the weights are not finite", steps
    elif validation is not None and not math.isfinite(validation.loss):
        what, step = f"the validation loss is {validation.loss}", steps
    else:
        return
    global_step = Position(epoch, step).global_step(steps)
    kept = ("" if twin.saved is None or twin.checkpoints is None else
            f". The last checkpoint, all finite (epoch {twin.saved.epoch}, step "
            f"{twin.saved.step}), is kept at {twin.checkpoints.path}")
    raise DivergenceError(
        f"{twin.name}: {what} at epoch {epoch + 1}, step {step} of {steps} (global step "
        f"{global_step}) with learning rate {twin.backend.lr:g}; try a smaller --lr{kept}",
        twin.name, global_step, twin.history.epochs)
