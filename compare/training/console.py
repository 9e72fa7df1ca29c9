"""What a run prints as it trains: a progress bar per epoch on a terminal, one line per twin and
epoch, and each twin's test accuracy at the end."""

from __future__ import annotations

import sys
from typing import Any

from compare.training.history import EpochRecord


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
