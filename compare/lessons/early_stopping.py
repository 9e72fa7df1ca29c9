"""early-stopping: the overfitting configuration trained to its last epoch, and again with
``patience``: the run stops a few epochs after the lowest validation loss, and the epoch it keeps
in ``checkpoint-best`` has a lower test loss than the last epoch of the full run and about its
test accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from compare.data import Splits
from compare.lessons.base import (
    Lesson,
    LessonContext,
    LessonReport,
    Outcome,
    Row,
    train_configuration,
    verdict_of_twins,
)
from compare.lessons.capacity import Overfitting
from compare.training import checkpoint
from compare.training.build import evaluation_backend

LAST_EPOCH, LAST_LOSS, LAST_ACCURACY = ("last epoch", "test loss, last epoch",
                                        "test accuracy, last epoch")
STOPPED_AFTER, SAVED = "stopped after epoch", "epochs saved"
BEST_EPOCH, BEST_LOSS, BEST_ACCURACY = ("best epoch (checkpoint-best)", "test loss, best epoch",
                                        "test accuracy, best epoch")
OF_THE_FULL_RUN = (LAST_EPOCH, LAST_LOSS, LAST_ACCURACY)
"""The figures of the run without early stopping; the others are of the run with it."""


def stopping_figures(full: Outcome, stopped: Outcome, splits: Splits) -> dict[str, float]:
    """One twin's figures: the full run's last epoch and its test loss and accuracy; where the
    run with patience stopped, the epochs that saved, the best epoch it kept and that epoch's
    test loss and accuracy (its ``checkpoint-best`` evaluated on the test split, as ``compare
    evaluate`` does)."""
    best = checkpoint.read(stopped.best_checkpoint)
    test = evaluation_backend(checkpoint.network(best)).evaluate(splits.test_x, splits.test_y)
    return {LAST_EPOCH: len(full.history), LAST_LOSS: full.test_loss,
            LAST_ACCURACY: full.test_accuracy, STOPPED_AFTER: len(stopped.history),
            SAVED: len(full.history) - len(stopped.history), BEST_EPOCH: best.meta["epoch"],
            BEST_LOSS: test.loss, BEST_ACCURACY: test.accuracy}


@dataclass(frozen=True)
class EarlyStopping(Lesson):
    name = "early-stopping"
    claim = ("early stopping on the validation loss ends an overfitting run in a fraction of "
             "its epochs and keeps an epoch with a lower test loss and about the same test "
             "accuracy")
    overfitting: Overfitting = field(default_factory=Overfitting)  # trained with and without
    patience: int = 5  # epochs without a lower validation loss before the run stops
    saved: float = 0.5  # the run with patience must save this fraction of the epochs
    slack: float = 0.01  # the kept epoch's test accuracy may be this much below the last's
    dtype = Overfitting.dtype
    look_at = ("SCALARS Loss/val (the lowest point, where checkpoint-best is kept, then the "
               "rise), Accuracy/val; HPARAMS hparam/best_epoch")

    def run(self, context: LessonContext) -> LessonReport:
        config, splits = self.overfitting.configuration(context)
        labels = (f"{config.epochs}-epochs", f"patience-{self.patience}")
        full = train_configuration(context, labels[0], config, splits)
        stopped = train_configuration(context, labels[1], replace(config, patience=self.patience),
                                      splits)
        figures = {t: stopping_figures(full[t], stopped[t], splits) for t in full}
        rows = [Row(name, labels[name not in OF_THE_FULL_RUN],
                    {t: f[name] for t, f in figures.items()})
                for name in next(iter(figures.values()))]
        return self.report(context, rows, *self.verdict(figures))

    def failures(self, figures: dict[str, float]) -> list[str]:
        """What one twin's figures break of the claim; empty when it holds."""
        failed = []
        if figures[SAVED] < self.saved * figures[LAST_EPOCH]:
            failed.append(f"early stopping saved fewer than {self.saved:.0%} of the epochs")
        if not figures[BEST_LOSS] < figures[LAST_LOSS]:
            failed.append("the kept epoch's test loss is not lower than the last epoch's")
        if figures[BEST_ACCURACY] < figures[LAST_ACCURACY] - self.slack:
            failed.append(f"the kept epoch tests more than {self.slack:g} less accurately "
                          "than the last")
        return failed

    def verdict(self, figures: dict[str, dict[str, float]]) -> tuple[bool, str]:
        """Each twin: the run with patience saves at least ``saved`` of the epochs, and the
        epoch it keeps has a lower test loss than the full run's last epoch and a test accuracy
        no more than ``slack`` below it. The reason describes the first twin that fails (else
        the first)."""
        def describe(twin: str) -> str:
            f = figures[twin]
            return (f"({twin}) with patience {self.patience} the run stopped after epoch "
                    f"{f[STOPPED_AFTER]:.0f} of {f[LAST_EPOCH]:.0f} ({f[SAVED]:.0f} epochs "
                    f"saved) and kept epoch {f[BEST_EPOCH]:.0f}: test loss {f[BEST_LOSS]:.3f} "
                    f"and accuracy {f[BEST_ACCURACY]:.4f}, against {f[LAST_LOSS]:.3f} and "
                    f"{f[LAST_ACCURACY]:.4f} at epoch {f[LAST_EPOCH]:.0f} (the claim needs "
                    f"{self.saved:.0%} of the epochs saved, a lower test loss and the accuracy "
                    f"at most {self.slack:g} below)")

        return verdict_of_twins({t: self.failures(f) for t, f in figures.items()}, describe)
