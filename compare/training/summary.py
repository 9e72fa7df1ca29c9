"""What is known of a twin's run only when it ends: the test accuracy (a scalar, and a line in the
Text tab, where a single point is seen: the Time Series dashboard draws no line through it), the
HParams entry, the insight of the test set and (early stopping) the best epoch, in an event file
of its own, ``*.summary``, at the step of the run's last epoch.

The summary is written aside (``.summary.staging``) and moved in whole, so a run killed while
finishing has a whole summary or none (and finishes again when resumed); a run resumed to train
longer removes it: it describes an end the run no longer has.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from compare.insight.log import InsightLog
from compare.insight.tensorboard_writer import SummaryWriter
from compare.training.backend import Evaluation
from compare.training.config import TrainConfig
from compare.training.history import History

SUFFIX = ".summary"
STAGING = ".summary.staging"


def hparams(config: TrainConfig, meta: dict) -> dict[str, float | int | str | bool]:
    """The run's settings as the HParams tab shows them."""
    return {
        "arch": config.arch.spec, "activation": config.arch.activation,
        "optimizer": config.optimizer.name, "lr": config.optimizer.lr,
        "batch_size": config.batch_size, "epochs": config.epochs, "seed": config.seed,
        "dtype": config.dtype, "schedule": config.schedule, "dataset": meta.get("dataset", ""),
        **{k: v for k, v in config.optimizer.settings.items() if isinstance(v, int | float)},
        **({} if config.patience is None else {"patience": config.patience}),
    }


def hparams_markdown(config: TrainConfig, meta: dict) -> str:
    """The settings and the data's normalization as a Markdown table (the Text tab)."""
    rows = [*hparams(config, meta).items(), ("normalization mean", meta["mean"]),
            ("normalization std", meta["std"]), ("train / val / test", meta["sizes"])]
    return "| setting | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def remove_unfinished(folder: Path, *, ended: bool) -> None:
    """Remove a summary a killed process left half-made and, unless the run has ``ended``
    (trained all its epochs), a summary of an end it no longer has."""
    shutil.rmtree(folder / STAGING, ignore_errors=True)
    if not ended:
        for stale in folder.glob(f"*{SUFFIX}"):
            stale.unlink()


def write_summary(folder: Path, config: TrainConfig, meta: dict, history: History,
                  test: Evaluation, insight: InsightLog | None) -> None:
    """The end of the run in ``folder``: test accuracy, HParams entry, the test set's insight,
    and with early stopping the best epoch (``hparam/best_epoch``, ``hparam/best_val_loss`` and
    a line in the Text tab)."""
    staging, epochs = folder / STAGING, len(history.epoch_seconds)
    metrics = {"hparam/test_accuracy": test.accuracy,
               "hparam/final_train_loss": history.train_loss}
    with SummaryWriter(staging, filename_suffix=SUFFIX) as summary:
        summary.add_scalar("Accuracy/test", test.accuracy, epochs)
        summary.add_text("test", f"**test accuracy {test.accuracy:.4f}**, test loss "
                                 f"{test.loss:.4f}, after {epochs} epochs", epochs)
        if history.best_epoch is not None:
            metrics |= {"hparam/best_epoch": history.best_epoch,
                        "hparam/best_val_loss": history.best_val_loss}
            summary.add_text("early_stopping", early_stopping_text(history, config), epochs)
        summary.add_hparams(hparams(config, meta), metrics, step=epochs)
        if insight:
            insight.final(summary, epochs, test)
    publish_summary(staging, folder)


def early_stopping_text(history: History, config: TrainConfig) -> str:
    """How the run ended and its best epoch, for the Text tab."""
    trained = len(history.epoch_seconds)
    how = (f"stopped early after epoch {trained} of {config.epochs}: the validation loss had "
           f"not improved for {config.patience} epochs" if history.stopped_early else
           f"trained all {trained} epochs")
    return (f"{how}; best epoch {history.best_epoch}, validation loss "
            f"{history.best_val_loss:.6g}, kept in checkpoint-best")


def publish_summary(staging: Path, folder: Path) -> None:
    """Move the summary written in ``staging`` into ``folder`` in place of an older one, by
    renaming: a run killed while finishing has a whole summary or none (and then finishes
    again when resumed)."""
    for stale in folder.glob(f"*{SUFFIX}"):
        stale.unlink()
    for written in staging.iterdir():
        os.replace(written, folder / written.name)
    staging.rmdir()


def has_summary(folder: Path) -> bool:
    """Whether the twin in ``folder`` finished its run (its summary is written)."""
    return any(folder.glob(f"*{SUFFIX}"))
