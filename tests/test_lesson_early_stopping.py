"""compare lesson early-stopping: the verdict reads each of its three conditions (epochs saved,
a lower test loss, the accuracy within the slack) for each twin, and a run stopped before it
overfits keeps its last epoch and saves nothing. (tests/test_lessons.py runs the lesson with
both twins and swaps its configuration like every lesson's.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compare.data import SAMPLE, load_splits
from compare.lessons import LESSONS
from compare.lessons.base import DOES_NOT_HOLD, LessonContext
from compare.lessons.capacity import Overfitting
from compare.lessons.early_stopping import (
    BEST_ACCURACY,
    BEST_EPOCH,
    BEST_LOSS,
    LAST_ACCURACY,
    LAST_EPOCH,
    LAST_LOSS,
    SAVED,
    STOPPED_AFTER,
    EarlyStopping,
)
from compare.training.interrupt import StopRequest

HOLDING = {LAST_EPOCH: 60, LAST_LOSS: 0.66, LAST_ACCURACY: 0.82, STOPPED_AFTER: 13, SAVED: 47,
           BEST_EPOCH: 8, BEST_LOSS: 0.56, BEST_ACCURACY: 0.815}
"""One twin's figures that hold: 47 of 60 epochs saved, a lower test loss, 0.005 less
accurate (within the default slack of 0.01)."""


@pytest.mark.parametrize(("broken", "failure"), [
    ({STOPPED_AFTER: 40, SAVED: 20}, "early stopping saved fewer than 50% of the epochs"),
    ({BEST_LOSS: 0.66}, "the kept epoch's test loss is not lower than the last epoch's"),
    ({BEST_ACCURACY: 0.8}, "the kept epoch tests more than 0.01 less accurately than the last"),
])
def test_the_verdict_fails_the_twin_that_breaks_a_condition(broken: dict, failure: str) -> None:
    lesson = EarlyStopping()
    holds, reason = lesson.verdict({"scratch": HOLDING, "torch": HOLDING | broken})
    assert not holds and reason.startswith("(torch) ") and reason.endswith(f"; torch: {failure}"), (
        reason)
    holds, reason = lesson.verdict({"scratch": HOLDING, "torch": HOLDING})
    assert holds and reason.startswith("(scratch) ") and "; scratch:" not in reason, reason


def test_a_run_stopped_before_it_overfits_keeps_its_last_epoch(tmp_path: Path) -> None:
    lesson = EarlyStopping(overfitting=Overfitting(epochs=5))
    splits = load_splits(Path("."), SAMPLE, dtype=np.float64)
    with StopRequest() as stop:
        report = lesson.run(LessonContext(lesson.name, ["scratch"], splits, SAMPLE, tmp_path, 0,
                                          stop, log=lambda line: None))
    figures = {row.figure: row.values["scratch"] for row in report.rows}
    assert figures[SAVED] == 0 and figures[BEST_EPOCH] == figures[LAST_EPOCH] == 5, figures
    # checkpoint-best holds the weights the full run ended with: the same test figures, exactly
    assert (figures[BEST_LOSS], figures[BEST_ACCURACY]) == (
        figures[LAST_LOSS], figures[LAST_ACCURACY]), figures
    assert report.verdict == DOES_NOT_HOLD and "saved fewer than 50%" in report.reason, (
        report.reason)
    assert (tmp_path / "patience-5" / "scratch" / "checkpoint-best.npz").is_file()


def test_the_lesson_trains_the_overfitting_lessons_configuration() -> None:
    assert LESSONS["early-stopping"].overfitting == LESSONS["overfitting"]
