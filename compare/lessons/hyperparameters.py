"""learning-rate and batch-size: how fast and how steadily training goes, set by two numbers."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass

import numpy as np

from compare.lessons.base import (
    Lesson,
    LessonContext,
    LessonReport,
    Outcome,
    Row,
    sgd_config,
    train_configuration,
)

HIDDEN = (128, 64)  # the default network, 784-128-64-10 ReLU


def final_loss(outcome: Outcome) -> float:
    """The last epoch's training loss; infinite for a run that diverged."""
    return float("inf") if outcome.diverged_at is not None else outcome.history[-1].train_loss


@dataclass(frozen=True)
class LearningRate(Lesson):
    name = "learning-rate"
    claim = "a learning rate too low crawls, one too high overshoots or diverges"
    low: float = 0.001
    good: float = 0.1
    high: float = 20.0
    epochs: int = 2
    margin: float = 0.2  # in training loss: how much worse "crawls" and "overshoots" must be
    dtype = "float64"
    look_at = "SCALARS Loss/train_step, one run per learning rate"

    def run(self, context: LessonContext) -> LessonReport:
        losses, rows = {}, []
        for role, lr in (("too low", self.low), ("good", self.good), ("too high", self.high)):
            label = f"lr-{lr:g}"
            outcomes = train_configuration(context, label, sgd_config(
                context, HIDDEN, "relu", epochs=self.epochs, lr=lr, dtype=self.dtype),
                may_diverge=True)
            losses[role] = {t: final_loss(o) for t, o in outcomes.items()}
            rows += [Row("training loss, last epoch", label, losses[role]),
                     Row("diverged at step (0: never)", label,
                         {t: o.diverged_at or 0 for t, o in outcomes.items()})]
        holds = all(losses["too low"][t] >= losses["good"][t] + self.margin and
                    losses["too high"][t] >= losses["good"][t] + self.margin
                    for t in losses["good"])
        twin = next(iter(losses["good"]))
        high = losses["too high"][twin]
        reason = (f"after {self.epochs} epochs the training loss is "
                  f"{losses['too low'][twin]:.3f} at lr {self.low:g}, "
                  f"{losses['good'][twin]:.3f} at lr {self.good:g} and "
                  f"{'diverged' if high == float('inf') else f'{high:.3f}'} at lr {self.high:g} "
                  f"(the claim needs both ends {self.margin:g} worse than the middle)")
        return self.report(context, rows, holds, reason)


def step_noise(outcome: Outcome) -> float:
    """How unsteady the last epoch was: the standard deviation of the change in training loss
    from one step to the next."""
    return float(np.std(np.diff(outcome.history[-1].step_losses)))


@dataclass(frozen=True)
class BatchSize(Lesson):
    name = "batch-size"
    claim = ("larger batches are steadier and faster per epoch; smaller ones take more updates "
             "per epoch")
    batch_sizes: tuple[int, ...] = (16, 128, 1024)  # smallest first
    epochs: int = 3
    lr: float = 0.1
    speedup: float = 1.5  # the largest batch's epoch must be at least this much faster
    dtype = "float32"
    look_at = "SCALARS Loss/train_step (the noise), Time/epoch_seconds, Accuracy/val"

    def run(self, context: LessonContext) -> LessonReport:
        figures, rows = {}, []
        for batch_size in self.batch_sizes:
            label = f"batch-{batch_size}"
            outcomes = train_configuration(context, label, sgd_config(
                context, HIDDEN, "relu", epochs=self.epochs, lr=self.lr, dtype=self.dtype,
                batch_size=batch_size))
            figures[batch_size] = {t: {
                "seconds per epoch": statistics.median(r.seconds for r in o.history),
                "updates per epoch": len(o.history[-1].step_losses),
                "step-to-step loss noise": step_noise(o),
                f"val accuracy after {self.epochs} epochs": o.history[-1].validation.accuracy,
            } for t, o in outcomes.items()}
            rows += [Row(name, label, {t: f[name] for t, f in figures[batch_size].items()},
                         math=name != "seconds per epoch")
                     for name in next(iter(figures[batch_size].values()))]
        return self.report(context, rows, *self.verdict(figures))

    def verdict(self, figures: dict[int, dict[str, dict]]) -> tuple[bool, str]:
        """Each larger batch: fewer updates and less step-to-step noise; the largest's epoch at
        least ``speedup`` times faster than the smallest's; and the smallest, with its many
        more updates, at least as accurate after the same epochs."""
        accuracy = f"val accuracy after {self.epochs} epochs"
        small, large = self.batch_sizes[0], self.batch_sizes[-1]
        holds = True
        for twin in figures[small]:
            f = [figures[b][twin] for b in self.batch_sizes]
            holds &= all(a["step-to-step loss noise"] > b["step-to-step loss noise"] and
                         a["updates per epoch"] > b["updates per epoch"]
                         for a, b in itertools.pairwise(f))
            holds &= f[0]["seconds per epoch"] >= self.speedup * f[-1]["seconds per epoch"]
            holds &= f[0][accuracy] >= f[-1][accuracy]
        twin = next(iter(figures[small]))
        a, b = figures[small][twin], figures[large][twin]
        reason = (f"({twin}) batch {small}: {a['updates per epoch']} updates and "
                  f"{a['seconds per epoch']:.2f} s an epoch, loss noise "
                  f"{a['step-to-step loss noise']:.3f}, val accuracy {a[accuracy]:.3f}; batch "
                  f"{large}: {b['updates per epoch']} updates, {b['seconds per epoch']:.2f} s, "
                  f"noise {b['step-to-step loss noise']:.3f}, accuracy {b[accuracy]:.3f} (the "
                  f"claim needs fewer updates and less noise at every larger batch, the largest "
                  f"{self.speedup:g}x faster, and the smallest at least as accurate)")
        return holds, reason
