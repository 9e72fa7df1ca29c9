"""What every lesson shares: the context it runs in, training one configuration with each twin,
and the report: a few figures per configuration and twin, and a verdict computed from them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from compare.data import NUM_CLASSES, Splits
from compare.errors import CheckError
from compare.harness.arch import Architecture
from compare.harness.twins import StateDict
from compare.training.backend import Backend
from compare.training.config import TrainConfig
from compare.training.divergence import DivergenceError
from compare.training.history import EpochRecord
from compare.training.interrupt import StopRequest
from compare.training.loop import Run, train
from compare.training.optimizers import OptimizerSpec
from compare.training.run_dir import reserve_run_dir
from compare.training.twin import Twin

HOLDS, DOES_NOT_HOLD = "holds", "does not hold on this data"


@dataclass
class LessonContext:
    """Where and with what a lesson runs: the twins, the data, its TensorBoard folder."""

    lesson: str
    backends: list[str]
    splits: Splits | None  # None for a lesson with a problem of its own (Lesson.uses_data)
    dataset: str
    logdir: Path  # runs/lesson-<name>, one sub-folder per configuration (runner.teach makes it)
    seed: int
    stop: StopRequest = field(default_factory=StopRequest)  # runner.teach gives a live one
    log: Callable[[str], None] = print


@dataclass
class Outcome:
    """One configuration trained by one twin: its epochs, where it diverged (if it did), and the
    trained twin (its network and weights, None when it diverged) with the folder its run wrote."""

    history: list[EpochRecord]
    test_accuracy: float = math.nan
    train_accuracy: float = math.nan
    diverged_at: int | None = None  # the global step of the first non-finite value
    seconds: float = 0.0
    backend: Backend | None = None
    folder: Path | None = None
    test_loss: float = math.nan
    best_checkpoint: Path | None = None  # with early stopping (patience): checkpoint-best
    state: StateDict | None = None


def sgd_config(context: LessonContext, hidden: tuple[int, ...], activation: str, *, lr: float,
               layers: Mapping[str, object] | None = None, **settings: int | str) -> TrainConfig:
    """The network ``inputs-hidden...-10`` with ``activation``, plain SGD at ``lr``, the
    context's seed, on the CPU; ``layers`` are :class:`Architecture`'s norm, dropout, init and
    init_std (none, 0, torch's by default); ``settings`` are the others of :class:`TrainConfig`
    (epochs, dtype, batch_size: 64 unless given)."""
    arch = Architecture((context.splits.train_x.shape[1], *hidden, NUM_CLASSES), activation,
                        **(layers or {}))
    return TrainConfig(arch, OptimizerSpec.create("sgd", lr), seed=context.seed, device="cpu",
                       **settings)


def train_configuration(context: LessonContext, label: str, config: TrainConfig,
                        splits: Splits | None = None, *, may_diverge: bool = False
                        ) -> dict[str, Outcome]:
    """Train ``config`` with each twin of the context, logging to ``logdir/label/<twin>``. A
    divergence is an outcome when ``may_diverge``, and otherwise stops the lesson (CheckError):
    its figures need finished runs."""
    splits = splits or context.splits
    run_dir = reserve_run_dir(context.logdir, label)
    meta = {"lesson": context.lesson, "dataset": context.dataset,
            "data_dir": str(splits.source["train_images"].parent.resolve()),
            "val_size": len(splits.val_y), "seed": context.seed, "mean": splits.mean,
            "std": splits.std,
            "sizes": f"{len(splits.train_y)} / {len(splits.val_y)} / {len(splits.test_y)}",
            **config.arch.to_meta(), "dtype": config.dtype}
    outcomes = {}
    for name in context.backends:  # one run each: a twin that diverges leaves the other going
        twin = Twin.new(name, config, splits)
        outcomes[name] = _train_twin(context, Run([twin], config, splits, run_dir, meta))
        context.log(f"  {label:<16} {name:>7}: {_summary(outcomes[name])}")
        if outcomes[name].diverged_at is not None and not may_diverge:
            raise CheckError(f"lesson {context.lesson}: {label} diverged ({name}, step "
                             f"{outcomes[name].diverged_at}) on this data; no verdict")
    return outcomes


def _train_twin(context: LessonContext, run: Run) -> Outcome:
    """Train the one twin of ``run``; how it went."""
    (twin,) = run.twins
    started = time.perf_counter()
    try:
        (history,) = train(run, stop=context.stop)
    except DivergenceError as diverged:
        return Outcome(diverged.history, diverged_at=diverged.step,
                       seconds=time.perf_counter() - started)
    train_accuracy = twin.backend.evaluate(run.splits.train_x, run.splits.train_y).accuracy
    best = None if run.config.patience is None else twin.checkpoints.best
    return Outcome(history.epochs, history.test.accuracy, train_accuracy,
                   seconds=time.perf_counter() - started, backend=twin.backend,
                   folder=run.folder / twin.name, test_loss=history.test.loss,
                   best_checkpoint=best, state=twin.backend.state_dict())


def _summary(outcome: Outcome) -> str:
    if outcome.diverged_at is not None:
        return f"diverged at step {outcome.diverged_at}"
    return (f"{len(outcome.history)} epochs, train loss {outcome.history[-1].train_loss:.4f}, "
            f"test accuracy {outcome.test_accuracy:.4f}, {outcome.seconds:.1f} s")


def verdict_of_twins(failed: dict[str, list[str]], describe: Callable[[str], str]
                     ) -> tuple[bool, str]:
    """Whether no twin broke the claim (``failed``: what each twin broke, empty when nothing),
    and the reason: ``describe`` of the first twin that broke it (else of the first twin),
    followed by what that twin broke."""
    twin = next((t for t, broken in failed.items() if broken), next(iter(failed)))
    reason = describe(twin)
    if failed[twin]:
        reason += f"; {twin}: " + "; ".join(failed[twin])
    return not any(failed.values()), reason


@dataclass
class Row:
    """One figure of one configuration, per twin. ``math`` figures must agree between the
    twins; the others (marked * in the table) measure the libraries (seconds, random draws of
    their own, rounding noise)."""

    figure: str
    config: str
    values: dict[str, float]
    math: bool = True


class Lesson:
    """A claim of the tutorials and the runs that test it. Each lesson is a frozen dataclass
    whose fields are its configuration, so a test can swap the one that should fail for the one
    that should succeed and watch the verdict turn."""

    name: ClassVar[str]
    claim: ClassVar[str]
    dtype: ClassVar[str]  # of every network the lesson trains
    look_at: ClassVar[str]  # what to open in TensorBoard
    uses_data: ClassVar[bool] = True  # False: the lesson brings its own small problem

    def run(self, context: LessonContext) -> LessonReport:
        raise NotImplementedError

    def report(self, context: LessonContext, rows: list[Row], holds: bool, reason: str,
               pictures: dict[str, bytes] | None = None) -> LessonReport:
        return LessonReport(self.name, self.claim, rows, holds, reason, context.logdir,
                            self.dtype, self.look_at, pictures or {})


@dataclass
class LessonReport:
    name: str
    claim: str
    rows: list[Row]
    holds: bool
    reason: str
    runs: Path | None  # None: run in a temporary folder, gone (compare.run_lesson)
    dtype: str
    look_at: str  # what to open in TensorBoard
    pictures: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG bytes

    @property
    def verdict(self) -> str:
        return HOLDS if self.holds else DOES_NOT_HOLD

    def twin_difference(self) -> float | None:
        """The largest relative difference |a-b|/max(|a|,|b|) between the twins' values of a
        math figure; None with one twin."""
        pairs = [tuple(row.values.values()) for row in self.rows
                 if row.math and len(row.values) == 2]
        if not pairs:
            return None
        return max((abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0) for a, b in pairs)

    def picture_files(self) -> list[str]:
        """Where :meth:`write_pictures` puts the pictures (their names without ``runs``)."""
        return [name if self.runs is None else str(self.runs / name) for name in self.pictures]

    def write_pictures(self) -> None:
        """Each picture as a PNG file in ``runs``."""
        for name, picture in self.pictures.items():
            (self.runs / name).write_bytes(picture)

    def to_json(self) -> dict:
        return {"lesson": self.name, "claim": self.claim, "verdict": self.verdict,
                "reason": self.reason, "dtype": self.dtype,
                "twin_max_rel_difference": self.twin_difference(),
                "runs": None if self.runs is None else str(self.runs),
                "pictures": self.picture_files(),
                "figures": [{"figure": r.figure, "config": r.config, "values": r.values,
                             "twins_must_agree": r.math} for r in self.rows]}

    def table(self) -> str:
        twins = list(self.rows[0].values) if self.rows else []
        figures = [row.figure + ("" if row.math else " *") for row in self.rows]
        width = max(map(len, figures)) + 2
        kept = ("runs not kept (no logdir given)" if self.runs is None else
                f"runs in {self.runs} (TensorBoard: {self.look_at})")
        lines = [f"lesson {self.name}: {self.claim}", kept,
                 *([f"pictures: {', '.join(self.picture_files())}"] if self.pictures else []),
                 "",
                 f"{'figure':<{width}}{'config':<18}" + "".join(f"{t:>12}" for t in twins)]
        lines += [f"{figure:<{width}}{row.config:<18}" +
                  "".join(f"{_number(row.values[t]):>12}" for t in twins)
                  for figure, row in zip(figures, self.rows, strict=True)]
        difference = self.twin_difference()
        if difference is not None:
            lines.append(f"\nlargest relative difference between the twins' figures (those "
                         f"marked * aside): {difference:.1e} ({self.dtype})")
        lines.append(f"verdict: {self.verdict}: {self.reason}")
        return "\n".join(lines)


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and
                                  abs(value) < 1e6):
        return str(int(value))
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
