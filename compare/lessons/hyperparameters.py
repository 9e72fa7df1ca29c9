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
    verdict_of_twins,
)

HIDDEN = (128, 64)  # the default network, 784-128-64-10 ReLU
SECONDS = "seconds per epoch"  # shown, never judged: it measures the machine's load


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
    """The verdict reads only what the runs compute (updates, step-to-step noise, accuracy);
    the seconds per epoch are shown, never judged: they measure how busy the machine is."""

    name = "batch-size"
    claim = ("larger batches take fewer, steadier updates per epoch; smaller ones take more "
             "updates and learn at least as much in the same epochs")
    batch_sizes: tuple[int, ...] = (16, 128, 1024)  # smallest first
    epochs: int = 3
    lr: float = 0.1
    # float64: the figures of a many-step float32 run depend on the CPU's BLAS kernels.
    dtype = "float64"
    look_at = "SCALARS Loss/train_step (the noise), Accuracy/val, Time/epoch_seconds"

    def run(self, context: LessonContext) -> LessonReport:
        figures, rows = {}, []
        for batch_size in self.batch_sizes:
            label = f"batch-{batch_size}"
            outcomes = train_configuration(context, label, sgd_config(
                context, HIDDEN, "relu", epochs=self.epochs, lr=self.lr, dtype=self.dtype,
                batch_size=batch_size))
            figures[batch_size] = {t: {
                "updates per epoch": len(o.history[-1].step_losses),
                "step-to-step loss noise": step_noise(o),
                self.accuracy: o.history[-1].validation.accuracy,
                SECONDS: statistics.median(r.seconds for r in o.history),
            } for t, o in outcomes.items()}
            rows += [Row(name, label, {t: f[name] for t, f in figures[batch_size].items()},
                         math=name != SECONDS)
                     for name in next(iter(figures[batch_size].values()))]
        return self.report(context, rows, *self.verdict(figures))

    @property
    def accuracy(self) -> str:
        return f"val accuracy after {self.epochs} epochs"

    def failures(self, per_batch: list[dict[str, float]]) -> list[str]:
        """What one twin's figures (one dict per batch size, smallest first) break of the
        claim; empty when it holds. Seconds are never read."""
        pairs = list(itertools.pairwise(per_batch))
        failed = [f"{what} does not fall at every larger batch" for what in
                  ("updates per epoch", "step-to-step loss noise")
                  if not all(a[what] > b[what] for a, b in pairs)]
        if per_batch[0][self.accuracy] < per_batch[-1][self.accuracy]:
            failed.append("the smallest batch is less accurate than the largest")
        return failed

    def verdict(self, figures: dict[int, dict[str, dict[str, float]]]) -> tuple[bool, str]:
        """Each twin: at every larger batch fewer updates and less step-to-step noise, and the
        smallest batch, with its many more updates, at least as accurate as the largest after
        the same epochs. The reason describes the first twin that fails (else the first)."""
        small, large = self.batch_sizes[0], self.batch_sizes[-1]
        failed = {t: self.failures([figures[b][t] for b in self.batch_sizes])
                  for t in figures[small]}

        def describe(twin: str) -> str:
            a, b = figures[small][twin], figures[large][twin]
            return (f"({twin}) batch {small}: {a['updates per epoch']} updates an epoch, loss "
                    f"noise {a['step-to-step loss noise']:.3f}, val accuracy "
                    f"{a[self.accuracy]:.3f}; batch {large}: {b['updates per epoch']} updates, "
                    f"noise {b['step-to-step loss noise']:.3f}, accuracy "
                    f"{b[self.accuracy]:.3f} (the claim needs fewer updates and less noise at "
                    f"every larger batch and the smallest at least as accurate; seconds per "
                    f"epoch, {a[SECONDS]:.2f} and {b[SECONDS]:.2f}, are not judged)")

        return verdict_of_twins(failed, describe)
