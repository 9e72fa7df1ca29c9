"""One twin's record of a run: its TensorBoard folder, its checkpoint and its console lines.

``runs/<run-name>/<twin>/`` holds the events and ``checkpoint.npz`` (scratch) or
``checkpoint.pt`` (torch); both twins write the same tags so that TensorBoard overlays them.
What is known only when a run ends (test accuracy, the HPARAMS entry) goes to an event file of
its own, ``*.summary``, which a run resumed to train longer removes: it describes an end the run
no longer has. A resumed run writes no point that its folder already holds, so a run killed
after an epoch's events and before its checkpoint logs that epoch once.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from compare.data import Splits
from compare.errors import CheckError
from compare.insight.log import InsightLog, log_every, recorded_steps
from compare.training.backend import Backend, Evaluation
from compare.training.config import Position, TrainConfig, batch_bounds
from compare.training.tensorboard_writer import SummaryWriter, written_points

SUMMARY_SUFFIX = ".summary"
SUMMARY_STAGING = ".summary.staging"


class TrainingError(CheckError):
    """Training stopped: a non-finite value, or the twins drifted apart under --lockstep."""


class DivergenceError(TrainingError):
    """A loss, a weight or the validation loss stopped being finite at global ``step``;
    ``history`` holds the epochs before."""

    def __init__(self, message: str, step: int, history: list[EpochRecord]) -> None:
        super().__init__(message)
        self.step, self.history = step, history


@dataclass
class EpochRecord:
    """What one epoch of one twin measured, kept in memory for the caller (the lessons)."""

    epoch: int
    train_loss: float
    validation: Evaluation | None
    seconds: float
    step_losses: np.ndarray
    grad_norms: np.ndarray  # (recorded steps, Linear layers)


@dataclass
class BackendResult:
    backend: str
    device: str
    test_accuracy: float
    final_train_loss: float
    epoch_seconds: list[float]
    run_dir: str
    history: list[EpochRecord] = field(default_factory=list, repr=False)

    def to_json(self) -> str:
        fields = {key: value for key, value in asdict(self).items() if key != "history"}
        return json.dumps(fields, allow_nan=False)


class RunLog:
    """Writes one twin's events, checkpoints and epoch lines; use it as a context manager.

    ``resumed_meta`` (the meta of the checkpoint a resumed run continues from) carries the earlier
    epochs' seconds and last training loss over.
    """

    def __init__(self, backend: Backend, run_dir: Path, config: TrainConfig, meta: dict,
                 log: Callable[[str], None], resumed_meta: dict | None = None,
                 insight_splits: Splits | None = None) -> None:
        self.name, self.config, self.meta, self.log = backend.name, config, meta, log
        self.folder = run_dir / backend.name
        self.folder.mkdir(exist_ok=True)
        self.checkpoint = self.folder / f"checkpoint{backend.checkpoint_suffix}"
        self.previous = self.folder / f"checkpoint-previous{backend.checkpoint_suffix}"
        self._tidy_after_interruption(resumed_meta)
        self.writer = SummaryWriter(self.folder, skip=written_points(self.folder))
        self.insight, self.every = None, 0
        if insight_splits is not None:
            self.insight = InsightLog(self.writer, insight_splits)
            self.every = log_every(len(batch_bounds(len(insight_splits.train_y),
                                                    config.batch_size)))
        self.weight_names = [name for name in backend.state_dict() if name.endswith(".weight")]
        self.epoch_seconds: list[float] = list((resumed_meta or {}).get("epoch_seconds", []))
        saved_loss = (resumed_meta or {}).get("train_loss")
        self.train_loss = math.nan if saved_loss is None else float(saved_loss)
        self.saved = Position()  # where the checkpoint on disk continues from
        self.history: list[EpochRecord] = []

    def _tidy_after_interruption(self, resumed_meta: dict | None) -> None:
        """Before this twin writes: remove what a killed process left half-made (temporary
        checkpoint and summary files, also of a twin killed before its first checkpoint) and,
        resuming, a summary of an end the run no longer has."""
        for stale in self.folder.glob(".*.tmp"):
            stale.unlink()
        shutil.rmtree(self.folder / SUMMARY_STAGING, ignore_errors=True)
        if resumed_meta is not None and resumed_meta["position"]["epoch"] < self.config.epochs:
            for stale in self.folder.glob(f"*{SUMMARY_SUFFIX}"):
                stale.unlink()

    def start(self, backend: Backend) -> None:
        """The untrained network's events: the settings as a text table and its pictures."""
        self.writer.add_text("hparams", hparams_markdown(self.config, self.meta))
        if self.insight:
            self.insight.start()
            self.insight.epoch(backend, 0, None)

    def save(self, backend: Backend, position: Position) -> None:
        """A checkpoint from which the run continues exactly at ``position``. A --lockstep run
        keeps the one before as ``checkpoint-previous``: killed between the twins' saves, the
        run continues from the position both reached."""
        if self.meta.get("lockstep") and self.checkpoint.exists():
            self.previous.unlink(missing_ok=True)
            os.link(self.checkpoint, self.previous)
        meta = self.meta | {"backend": self.name, "epoch": position.epoch,
                            "position": position.to_json(), "epoch_seconds": self.epoch_seconds,
                            "train_loss": None if math.isnan(self.train_loss) else self.train_loss}
        backend.save_checkpoint(self.checkpoint, meta, position.records())
        self.saved = position

    def recorded_steps(self, done: int, steps: int) -> list[int]:
        """Which of the next ``steps`` steps, after ``done`` steps of the run, record their
        weight-gradient norms (0-based positions); none without insight."""
        return recorded_steps(done + 1, steps, self.every)

    def end_epoch(self, backend: Backend, epoch: int, losses: np.ndarray, grad_norms: np.ndarray,
                  seconds: float, validation: Evaluation | None, next_position: Position) -> None:
        """Stop on a non-finite loss or weight; else log the epoch, save the checkpoint, print
        one line."""
        self._stop_if_not_finite(backend, epoch, losses, validation)
        self.epoch_seconds.append(seconds)
        self.train_loss = float(losses.mean())
        summary = None if validation is None else Evaluation(validation.loss, validation.accuracy)
        self.history.append(EpochRecord(epoch, self.train_loss, summary, seconds, losses,
                                        grad_norms))
        self._log_scalars(backend, epoch, validation, seconds)
        if self.insight:
            done = (epoch - 1) * len(losses)
            positions = self.recorded_steps(done, len(losses))
            self.insight.steps(self.weight_names, [done + i + 1 for i in positions],
                               losses[positions], grad_norms)
            self.insight.epoch(backend, epoch, validation)
        self.save(backend, next_position)
        val_text = ("no validation split" if validation is None else
                    f"val loss {validation.loss:.4f}, val accuracy {validation.accuracy:.4f}")
        self.log(f"{self.name:>7} epoch {epoch}/{self.config.epochs}: train loss "
                 f"{self.train_loss:.4f}, {val_text}, {seconds:.2f} s, lr {backend.lr:g}")

    def finish(self, backend: Backend, test: Evaluation) -> BackendResult:
        """The test accuracy and the HPARAMS entry; the result ``--json`` prints."""
        epochs, test_accuracy = self.config.epochs, test.accuracy
        if not math.isfinite(test.loss):
            raise TrainingError(f"{self.name}: the test loss is {test.loss} after epoch {epochs}; "
                                f"the checkpoint is kept at {self.checkpoint}")
        staging = self.folder / SUMMARY_STAGING
        with SummaryWriter(staging, filename_suffix=SUMMARY_SUFFIX) as summary:
            summary.add_scalar("Accuracy/test", test_accuracy, epochs)
            summary.add_hparams(hparams(self.config, self.meta),
                                {"hparam/test_accuracy": test_accuracy,
                                 "hparam/final_train_loss": self.train_loss}, step=epochs)
            if self.insight:
                self.insight.final(summary, epochs, test)
        publish_summary(staging, self.folder)
        self.log(f"{self.name:>7} test accuracy {test_accuracy:.4f}")
        return BackendResult(self.name, str(backend.device), test_accuracy, self.train_loss,
                             self.epoch_seconds, str(self.folder), self.history)

    def _stop_if_not_finite(self, backend: Backend, epoch: int, losses: np.ndarray,
                            validation: Evaluation | None) -> None:
        """The step losses, the weights and the validation loss must all be finite."""
        steps = len(losses)
        bad_steps = np.flatnonzero(~np.isfinite(losses))
        if bad_steps.size:
            what, step = f"the loss is {losses[bad_steps[0]]}", int(bad_steps[0]) + 1
        elif not all(np.all(np.isfinite(w)) for w in backend.state_dict().values()):
            what, step = "the weights are not finite", steps
        elif validation is not None and not math.isfinite(validation.loss):
            what, step = f"the validation loss is {validation.loss}", steps
        else:
            return
        global_step = (epoch - 1) * steps + step
        raise DivergenceError(
            f"{self.name}: {what} at epoch {epoch}, step {step} of {steps} (global step "
            f"{global_step}) with learning rate {backend.lr:g}; try a smaller --lr. The last "
            f"checkpoint, all finite (epoch {self.saved.epoch}, step {self.saved.step}), is kept "
            f"at {self.checkpoint}", global_step, self.history)

    def _log_scalars(self, backend: Backend, epoch: int, validation: Evaluation | None,
                     seconds: float) -> None:
        """One epoch's scalars and weight histograms."""
        self.writer.add_scalar("Loss/train", self.train_loss, epoch)
        if validation is not None:
            self.writer.add_scalar("Loss/val", validation.loss, epoch)
            self.writer.add_scalar("Accuracy/val", validation.accuracy, epoch)
        self.writer.add_scalar("Time/epoch_seconds", seconds, epoch)
        for name, norm in backend.grad_norms().items():
            self.writer.add_scalar(f"GradNorm/{name}", norm, epoch)
        for name, weight in backend.state_dict().items():
            self.writer.add_histogram(f"Weights/{name}", weight, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def publish_summary(staging: Path, folder: Path) -> None:
    """Move the summary written in ``staging`` into ``folder`` in place of an older one, by
    renaming: a run killed while finishing has a whole summary or none (and then finishes
    again when resumed)."""
    for stale in folder.glob(f"*{SUMMARY_SUFFIX}"):
        stale.unlink()
    for written in staging.iterdir():
        os.replace(written, folder / written.name)
    staging.rmdir()


def has_summary(folder: Path) -> bool:
    """Whether the twin in ``folder`` finished its run (its summary is written)."""
    return any(folder.glob(f"*{SUMMARY_SUFFIX}"))


def hparams(config: TrainConfig, meta: dict) -> dict[str, float | int | str | bool]:
    return {
        "arch": config.arch.spec, "activation": config.arch.activation,
        "optimizer": config.optimizer.name, "lr": config.optimizer.lr,
        "batch_size": config.batch_size, "epochs": config.epochs, "seed": config.seed,
        "dtype": config.dtype, "schedule": config.schedule, "dataset": meta["dataset"],
        **{k: v for k, v in config.optimizer.settings.items() if isinstance(v, int | float)},
    }


def hparams_markdown(config: TrainConfig, meta: dict) -> str:
    rows = [*hparams(config, meta).items(), ("normalization mean", meta["mean"]),
            ("normalization std", meta["std"]), ("train / val / test", meta["sizes"])]
    return "| setting | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
