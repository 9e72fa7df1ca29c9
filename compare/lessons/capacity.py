"""width and overfitting: too few neurons cannot learn enough patterns; too many on too little
data memorize it, and early stopping on the validation set catches that."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from compare.data import Splits
from compare.lessons.base import (
    Lesson,
    LessonContext,
    LessonReport,
    Outcome,
    Row,
    sgd_config,
    train_configuration,
)
from compare.training.config import TrainConfig


@dataclass(frozen=True)
class Width(Lesson):
    name = "width"
    claim = "too few neurons cannot learn enough patterns (underfitting)"
    widths: tuple[int, ...] = (2, 16, 128)  # hidden neurons, narrowest first
    epochs: int = 3
    lr: float = 0.1
    gap: float = 0.1  # the widest must reach this much more training accuracy than the narrowest
    dtype = "float64"
    look_at = "SCALARS Loss/train and Accuracy/val, one run per width"

    def run(self, context: LessonContext) -> LessonReport:
        rows, train_accuracy = [], {}
        for hidden in self.widths:
            label = f"{hidden}-neurons"
            outcomes = train_configuration(context, label, sgd_config(
                context, (hidden,), "relu", epochs=self.epochs, lr=self.lr, dtype=self.dtype))
            train_accuracy[hidden] = {t: o.train_accuracy for t, o in outcomes.items()}
            rows += [Row("training loss, last epoch", label,
                         {t: o.history[-1].train_loss for t, o in outcomes.items()}),
                     Row("training accuracy", label, train_accuracy[hidden]),
                     Row("test accuracy", label, {t: o.test_accuracy for t, o in outcomes.items()})]
        narrow, wide = train_accuracy[self.widths[0]], train_accuracy[self.widths[-1]]
        holds = all(wide[t] - narrow[t] >= self.gap for t in narrow)
        twin = next(iter(narrow))
        reason = (f"{self.widths[0]} hidden neurons fit {narrow[twin]:.1%} of the training "
                  f"images after {self.epochs} epochs, {self.widths[-1]} fit {wide[twin]:.1%} "
                  f"(the claim needs {self.gap:.0%} more)")
        return self.report(context, rows, holds, reason)


@dataclass(frozen=True)
class Overfitting(Lesson):
    name = "overfitting"
    claim = ("too many neurons on too little data memorize it: training loss falls while "
             "validation loss turns up; early stopping catches it")
    train_images: int = 500
    hidden: int = 256
    epochs: int = 60
    lr: float = 0.1
    dtype = "float64"
    look_at = "SCALARS Loss/train against Loss/val (their gap), Accuracy/val"

    def run(self, context: LessonContext) -> LessonReport:
        label, outcomes = self.train(context)
        figures = {t: overfitting_figures(o.history, o.train_accuracy)
                   for t, o in outcomes.items()}
        rows = [Row(name, label, {t: f[name] for t, f in figures.items()})
                for name in next(iter(figures.values()))]
        holds = all(f["epoch of lowest val loss"] <= 0.8 * self.epochs and
                    f["val loss, last epoch"] >= 1.1 * f["lowest val loss"] and
                    f["training loss, last epoch"] < f["training loss at that epoch"]
                    for f in figures.values())
        f = next(iter(figures.values()))
        best = f["epoch of lowest val loss"]
        reason = (f"the validation loss was lowest at epoch {best:.0f} "
                  f"({f['lowest val loss']:.3f}) and rose to {f['val loss, last epoch']:.3f} by "
                  f"epoch {self.epochs} while the training loss fell from "
                  f"{f['training loss at that epoch']:.3f} to "
                  f"{f['training loss, last epoch']:.4f}; early stopping would keep epoch "
                  f"{best:.0f}")
        return self.report(context, rows, holds, reason)

    def configuration(self, context: LessonContext, dropout: float = 0.0
                      ) -> tuple[TrainConfig, Splits]:
        """The network and training that memorize (``hidden`` ReLU neurons, batches of 32), with
        ``dropout`` after the hidden activation, and the context's splits with only the first
        ``train_images`` training images (the dropout and early-stopping lessons train them
        too)."""
        splits = replace(context.splits, train_x=context.splits.train_x[: self.train_images],
                         train_y=context.splits.train_y[: self.train_images])
        return sgd_config(context, (self.hidden,), "relu", epochs=self.epochs, lr=self.lr,
                          dtype=self.dtype, batch_size=32, layers={"dropout": dropout}), splits

    def train(self, context: LessonContext, dropout: float = 0.0
              ) -> tuple[str, dict[str, Outcome]]:
        """:meth:`configuration` trained by each twin of the context: its label and the
        outcomes."""
        label = f"dropout-{dropout:g}" if dropout else f"{self.train_images}-images"
        return label, train_configuration(context, label, *self.configuration(context, dropout))


def overfitting_figures(history: list, train_accuracy: float) -> dict[str, float]:
    """Where the validation loss was lowest (where early stopping stops), and how far the
    training and validation figures have moved apart by the end."""
    val_losses = np.array([record.validation.loss for record in history])
    best = int(np.argmin(val_losses))
    return {"epoch of lowest val loss": best + 1, "lowest val loss": float(val_losses[best]),
            "val loss, last epoch": float(val_losses[-1]),
            "training loss at that epoch": history[best].train_loss,
            "training loss, last epoch": history[-1].train_loss,
            "val accuracy at that epoch": history[best].validation.accuracy,
            "val accuracy, last epoch": history[-1].validation.accuracy,
            "training accuracy, last epoch": train_accuracy}
