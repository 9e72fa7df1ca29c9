"""Early stopping (``--patience N``): each twin keeps the lowest validation loss of its run and
the epoch that reached it (its :class:`~compare.training.history.History`'s ``best_epoch`` and
``best_val_loss``). An epoch improves on the best when its validation loss is strictly lower; a
twin is out of patience once N epochs have passed since its best one; the run stops at the end
of an epoch when every twin it trains is out of patience.

Every twin, not the first: the twins are stepped together batch by batch and stand at one
position (one position to resume from, one step for ``--lockstep``), so they stop together, and
none is cut short of its own rule. In float64 their validation losses agree to the last digits
and they stop at the same epoch; in float32 a twin may train a few epochs past the one where,
alone, it would have stopped (its best checkpoint is still the best of the epochs it trained).

A checkpoint's meta keeps, under ``early_stopping``, the best epoch, its validation loss and the
epochs since, so that a resumed run counts on from where it stood.
"""

from __future__ import annotations

from compare.training.config import is_amount, is_count
from compare.training.history import History

META_KEY = "early_stopping"
META_FIELDS = {"best_epoch", "best_val_loss", "epochs_without_improvement"}


def record(history: History, epoch: int, validation_loss: float) -> bool:
    """Whether ``validation_loss``, that of 1-based ``epoch``, is lower than the best so far;
    when it is, ``history`` keeps it as the best."""
    if history.best_val_loss is not None and not validation_loss < history.best_val_loss:
        return False
    history.best_epoch, history.best_val_loss = epoch, validation_loss
    return True


def out_of_patience(best_epoch: int | None, epochs_done: int, patience: int | None) -> bool:
    """Whether ``patience`` epochs (None: no early stopping) of the ``epochs_done`` have passed
    since ``best_epoch`` without a lower validation loss."""
    return (patience is not None and best_epoch is not None and
            epochs_done - best_epoch >= patience)


def to_meta(history: History, epochs_done: int) -> dict:
    """What a checkpoint after ``epochs_done`` epochs keeps of the twin's best epoch."""
    return {"best_epoch": history.best_epoch, "best_val_loss": history.best_val_loss,
            "epochs_without_improvement": epochs_done - (history.best_epoch or 0)}


def best_of(meta: dict) -> dict:
    """The ``best_epoch`` and ``best_val_loss`` a checkpoint's ``meta`` holds (None and None
    without early stopping), as :class:`History` takes them."""
    saved = meta.get(META_KEY) or {}
    return {"best_epoch": saved.get("best_epoch"), "best_val_loss": saved.get("best_val_loss")}


def meta_is_valid(saved: object, patience: int | None, epochs_done: int) -> bool:
    """``saved``, a checkpoint's ``early_stopping`` meta (None: it has none), is what a run
    with ``patience`` writes after ``epochs_done`` epochs: none without early stopping; no best
    before the first epoch; after it, a best epoch among those done, a finite non-negative loss,
    and the epochs since it, no more than the patience (the run stops there)."""
    if patience is None or saved is None:
        return patience is None and saved is None
    if not (isinstance(saved, dict) and set(saved) == META_FIELDS):
        return False
    epoch, loss, waited = (saved[key] for key in ("best_epoch", "best_val_loss",
                                                  "epochs_without_improvement"))
    if epochs_done == 0:
        return epoch is None and loss is None and waited == 0 and is_count(waited)
    return (is_count(epoch, 1) and epoch <= epochs_done and isinstance(loss, float) and
            is_amount(loss) and is_count(waited) and waited == epochs_done - epoch and
            waited <= patience)
