"""compare lesson: every claim holds on the bundled MNIST sample with both twins agreeing, and
each verdict turns when the configuration that should fail is swapped for one that should not."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from compare import cli
from compare.data import SAMPLE, load_splits
from compare.errors import CheckError
from compare.harness import tolerance
from compare.lessons import LESSONS
from compare.lessons.base import DOES_NOT_HOLD, HOLDS, Lesson, LessonContext
from compare.lessons.capacity import Overfitting
from compare.lessons.hyperparameters import SECONDS, BatchSize
from compare.training import loop
from compare.training.interrupt import StopRequest

SWAPPED = {  # the configuration that should succeed, in place of the one that should fail
    "linear-collapse": {"stack": "relu"},  # a ReLU between the layers: no longer one layer
    "neuron-vs-layer": {"neuron_activation": "none"},  # a linear neuron can add
    "vanishing-gradients": {"failing": "relu"},  # ReLU on both sides
    "learning-rate": {"low": 0.1, "high": 0.1},  # every rate a good one
    "batch-size": {"batch_sizes": (128, 128)},  # the same batch size twice
    "overfitting": {"epochs": 5},  # stopped before it memorizes
    "width": {"widths": (128, 128)},  # wide enough on both sides
    "dropout": {"p": 0.0},  # no dropout on either side
    "init": {"symmetric": "kaiming"},  # Kaiming's neurons where zeros' should stay identical
    "batchnorm": {"norm": "none"},  # no batch norm on either side
    "early-stopping": {"overfitting": Overfitting(epochs=5)},  # the best epoch is the last
    "pattern-detector": {"shuffle_labels": True},  # labels that no template can follow
    "straight-line": {"activation": "none"},  # the network collapses into one Linear layer
}


def run_lesson(name: str, tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> dict:
    status = cli.main(["lesson", name, "--json", "--logdir", str(tmp_path), *extra])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def test_list_names_every_lesson_and_its_claim(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["lesson", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(LESSONS)
    assert all(lesson.claim in line for lesson, line in zip(LESSONS.values(), lines, strict=True))


@pytest.mark.parametrize("name", list(LESSONS))
def test_the_claim_holds_and_the_twins_agree(name: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    report = run_lesson(name, tmp_path, capsys)
    assert report["verdict"] == HOLDS, report["reason"]
    # A float32 run of many steps parts the twins by an amount set by the CPU's BLAS kernels
    # (1e-6 on one, 2e-3 on another): no fixed limit holds everywhere, so lessons run float64.
    assert report["dtype"] == "float64", f"{name} trains {report['dtype']}"
    limit = tolerance.TRAINING_LOCKSTEP_FLOAT64_MAX_REL
    assert report["twin_max_rel_difference"] <= limit, (
        f"{name}: the twins' figures differ by {report['twin_max_rel_difference']:.2e} relative,"
        f" over the float64 limit {limit:g} (max|a-b|/max|b|, any number of steps)")
    if name == "linear-collapse":
        (row,) = [r for r in report["figures"] if r["figure"].startswith("stack vs its")]
        assert max(row["values"].values()) <= tolerance.FLOAT64_MAX_REL, (
            f"the stack and its collapsed layer differ by {row['values']}; "
            f"{tolerance.FLOAT64.name}")
    runs = Path(report["runs"])
    assert runs == tmp_path / f"lesson-{name}"
    assert {path.name for path in runs.glob("*/*")} == {"scratch", "torch"}
    pictures = {Path(path) for path in report["pictures"]}
    assert pictures == set(runs.glob("*.png")), report["pictures"]
    by_twin = {twin: {path.read_bytes() for path in pictures if path.stem.endswith(twin)}
               for twin in ("scratch", "torch")}
    assert by_twin["scratch"] == by_twin["torch"], (
        f"{name}: the twins' pictures differ; in float64 they draw the same pixels")


@pytest.fixture(scope="module")
def sample_splits() -> dict:
    return {dtype: load_splits(Path("."), SAMPLE, dtype=getattr(np, dtype))
            for dtype in ("float32", "float64")}


@pytest.mark.parametrize("name", list(LESSONS))
def test_the_verdict_turns_when_the_failing_configuration_is_swapped(
        name: str, tmp_path: Path, sample_splits: dict) -> None:
    lesson: Lesson = dataclasses.replace(LESSONS[name], **SWAPPED[name])
    splits = sample_splits[lesson.dtype] if lesson.uses_data else None
    with StopRequest() as stop:
        report = lesson.run(LessonContext(name, ["scratch"], splits, SAMPLE, tmp_path, 0, stop,
                                          log=lambda line: None))
    assert report.verdict == DOES_NOT_HOLD, f"{name} with {SWAPPED[name]}: {report.reason}"


@pytest.mark.parametrize(("args", "culprit"), [
    (["lesson", "no-such-lesson"], "lesson 'no-such-lesson'"),
    (["lesson"], "name a lesson"),
    (["lesson", "width", "--data-dir", "/nowhere"], "--data-dir"),
    (["lesson", "width", "--dataset", "mnist", "--data-dir", "/nowhere", "--no-download"],
     "/nowhere/MNIST/raw/"),
])
def test_bad_lesson_arguments_are_one_line(args: list[str], culprit: str,
                                           capsys: pytest.CaptureFixture) -> None:
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and culprit in err, err


def test_a_lesson_whose_run_diverges_stops_without_a_verdict(tmp_path: Path,
                                                            sample_splits: dict) -> None:
    lesson = dataclasses.replace(LESSONS["width"], lr=1e30, epochs=1)
    expected = r"lesson width: \d+-neurons diverged \(scratch, step \d+\) on this data"
    with StopRequest() as stop, np.errstate(all="ignore"), pytest.raises(CheckError,
                                                                         match=expected):
        lesson.run(LessonContext("width", ["scratch"], sample_splits["float64"], SAMPLE,
                                 tmp_path, 0, stop, log=lambda line: None))


class SlowingClock:
    """A stand-in for the ``time`` module whose every reading is twice the last: each epoch
    seems to take longer than all before it, so the largest batch, trained last, looks the
    slowest, as on a machine that got busy mid-lesson."""

    def __init__(self) -> None:
        self.readings = (2.0 ** n for n in itertools.count())

    def perf_counter(self) -> float:
        return next(self.readings)


def test_the_batch_size_verdict_does_not_read_the_clock(
        tmp_path: Path, sample_splits: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "time", SlowingClock())
    lesson = LESSONS["batch-size"]
    with StopRequest() as stop:
        report = lesson.run(LessonContext("batch-size", ["scratch"], sample_splits[lesson.dtype],
                                          SAMPLE, tmp_path, 0, stop, log=lambda line: None))
    seconds = [row.values["scratch"] for row in report.rows if row.figure == SECONDS]
    assert seconds == sorted(seconds) and seconds[-1] > 1e3 * seconds[0], (
        f"the clock did not slow the epochs down: {seconds}")
    assert report.verdict == HOLDS, report.reason


def figures(noise: dict[str, list[float]]) -> dict[int, dict[str, dict[str, float]]]:
    """Batch-size figures for batches 16, 128 and 1024: per twin, its loss noise at each."""
    lesson = BatchSize()
    return {batch: {twin: {"updates per epoch": 10_000 // batch,
                           "step-to-step loss noise": values[i],
                           lesson.accuracy: 0.95 - 0.05 * i, SECONDS: 1.0}
                    for twin, values in noise.items()}
            for i, batch in enumerate(lesson.batch_sizes)}


def test_the_batch_size_reason_describes_the_twin_that_failed() -> None:
    holds, reason = BatchSize().verdict(figures({"scratch": [0.2, 0.1, 0.02],
                                                 "torch": [0.2, 0.3, 0.02]}))
    assert not holds and reason.startswith("(torch) batch 16:"), reason
    assert reason.endswith("torch: step-to-step loss noise does not fall at every larger "
                           "batch"), reason
    holds, reason = BatchSize().verdict(figures({"scratch": [0.2, 0.1, 0.02],
                                                 "torch": [0.2, 0.1, 0.02]}))
    assert holds and reason.startswith("(scratch) batch 16:"), reason
