"""What a run prints as it trains: a progress bar per epoch on a terminal, one line per twin and
epoch, and each twin's test accuracy at the end (with early stopping, why the run stopped and
each twin's best epoch)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from compare.training.history import EpochRecord, History


def progress_bar(label: str, steps: int, quiet: bool) -> Any:
    """A tqdm bar of ``steps`` steps on a terminal (it goes when closed); None otherwise."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=steps, desc=label, leave=False, unit="step")


def epoch_line(twin: str, record: EpochRecord, epochs: int, lr: float) -> str:
    """``scratch epoch 2/10: train loss 0.2792, val loss 0.2460, val accuracy 0.9210, ...``."""
    validation = record.validation
    val_text = ("no validation split" if validation is None else
                f"val loss {validation.loss:.4f}, val accuracy {validation.accuracy:.4f}")
    return (f"{twin:>7} epoch {record.epoch}/{epochs}: train loss {record.train_loss:.4f}, "
            f"{val_text}, {record.seconds:.2f} s, lr {lr:g}")


def test_line(twin: str, accuracy: float) -> str:
    return f"{twin:>7} test accuracy {accuracy:.4f}"


def stopped_early_line(epoch: int, epochs: int, patience: int) -> str:
    """``stopped early after epoch 9/20: the validation loss has not improved for 2 epochs``."""
    return (f"stopped early after epoch {epoch}/{epochs}: the validation loss has not improved "
            f"for {patience} epoch{'s' if patience > 1 else ''}")


def best_line(twin: str, history: History, path: Path | None) -> str:
    """``scratch best epoch 7: val loss 1.7040, kept in runs/NAME/scratch/checkpoint-best.npz``
    (``path`` None: nothing is kept)."""
    kept = "" if path is None else f", kept in {path}"
    return f"{twin:>7} best epoch {history.best_epoch}: val loss {history.best_val_loss:.4f}{kept}"
