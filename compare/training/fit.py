"""``fit``: train one twin or both from a script, through the loop ``compare train`` runs.

    splits = load_splits(Path("."), "mnist-sample")  # compare.data
    config = TrainConfig(Architecture.parse("784-128-64-10", "relu"), epochs=2)
    history = fit(splits, config)  # both twins, nothing written
    history["scratch"].epochs[-1].validation.accuracy, history["torch"].test.accuracy

Nothing is written to disk unless ``log_dir`` is given; then ``log_dir/<twin>/`` holds each
twin's TensorBoard events and checkpoint, as a run of ``compare train`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.data import NUM_CLASSES, Splits
from compare.harness.arch import parse_dtype
from compare.training.backend import BACKEND_NAMES
from compare.training.build import check_memory
from compare.training.config import SettingsError, TrainConfig
from compare.training.history import History
from compare.training.loop import Run, train
from compare.training.run_dir import run_lock
from compare.training.twin import Twin

BACKENDS = {"scratch": ["scratch"], "torch": ["torch"], "both": list(BACKEND_NAMES)}


def fit(splits: Splits, config: TrainConfig, *, backend: str = "both",
        log_dir: str | Path | None = None, insight: bool = True, lockstep: bool = False
        ) -> dict[str, History]:
    """Train ``backend`` (``"scratch"``, ``"torch"`` or ``"both"``, stepped together batch by
    batch) on ``splits.train_x`` (N, features) and ``splits.train_y`` (N,) with the settings
    of ``config`` (network, optimizer, epochs, batch size, seed, dtype, device: see
    :class:`TrainConfig`), from the initial weights its seed draws; validate after every epoch,
    test after the last (with ``config.patience``, the run may stop before its last epoch: see
    :mod:`compare.training.early_stopping`).

    ``log_dir``: a folder to write each twin's TensorBoard events and checkpoints into (made if
    missing; refused if it holds a run already); None writes nothing. ``insight`` records each
    twin's per-step losses, gradient norms and update ratios (and, with a ``log_dir``, its
    pictures); ``lockstep`` (with ``"both"``) compares the twins after every step and raises a
    ``TrainingError`` when float64 weights drift apart.

    Returns each twin's :class:`History`, keyed by ``"scratch"`` / ``"torch"``: per epoch the
    training loss, the validation loss and accuracy (None without a validation split), the
    seconds, the step losses, gradient norms and update ratios; the test loss and accuracy after
    the last; with ``patience``, ``best_epoch``, ``best_val_loss`` and ``stopped_early`` (and,
    with a ``log_dir``, the best epoch's weights in ``checkpoint-best``).
    Raises ``SettingsError`` (a ``compare.errors.UserError``) naming a bad argument, and
    ``DivergenceError`` when a loss or weight stops being finite.
    """
    check_switches(log_dir, insight, lockstep)
    names = check_arguments(splits, config, backend, lockstep)
    twins = [Twin.new(name, config, splits) for name in names]
    if log_dir is None:
        histories = train(Run(twins, config, splits, insight=insight, lockstep=lockstep))
        return {history.backend: history for history in histories}
    folder = open_log_dir(log_dir)
    with run_lock(folder):
        histories = train(Run(twins, config, splits, folder,
                              script_meta(config, splits, names, insight, lockstep),
                              insight, lockstep))
    return {history.backend: history for history in histories}


def check_arguments(splits: Splits, config: TrainConfig, backend: str, lockstep: bool
                    ) -> list[str]:
    """The twins ``backend`` names, once every argument is one a run can have (SettingsError
    naming the first that is not)."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise SettingsError(f"backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if not isinstance(splits, Splits) or not isinstance(config, TrainConfig):
        raise SettingsError("fit(splits, config): splits must be a compare.data.Splits and "
                            "config a TrainConfig")
    config.check()
    if lockstep and backend != "both":
        raise SettingsError(f"lockstep compares the twins step by step: it needs backend "
                            f"'both', not {backend!r}")
    check_splits(splits)
    widths, features = config.arch.widths, splits.train_x.shape[1]
    if widths[0] != features or widths[-1] != NUM_CLASSES:
        raise SettingsError(f"arch {config.arch.spec}: the input width must be the {features} "
                            f"pixels of an image and the last the {NUM_CLASSES} classes")
    if splits.train_x.dtype != np.dtype(parse_dtype(config.dtype)) or not len(splits.train_y):
        raise SettingsError(f"splits hold {len(splits.train_y)} {splits.train_x.dtype} training "
                            f"images; the run needs {config.dtype} ones (load_splits(..., "
                            f"dtype=np.{config.dtype}))")
    if config.patience is not None and not len(splits.val_y):
        raise SettingsError(f"patience {config.patience}: early stopping watches the validation "
                            "loss, and splits hold no validation images (load_splits(..., "
                            "val_size=0)); keep some, or leave patience None")
    if config.arch.norm == "batch" and len(splits.train_y) < 2:
        raise SettingsError(f"splits hold {len(splits.train_y)} training image: batch norm "
                            "normalizes over the batch, which needs at least 2")
    check_device(config.device, BACKENDS[backend])
    check_memory(config, BACKENDS[backend], len(splits.train_y), batch_flag="batch_size")
    return BACKENDS[backend]


def check_splits(splits: Splits) -> None:
    """SettingsError naming the first array of ``splits`` that is not what ``load_splits``
    makes: (N, features) images of one float dtype beside (N,) integer labels in 0..9, and at
    least one test image."""
    width, dtype = np.shape(splits.train_x)[1:2], getattr(splits.train_x, "dtype", None)
    for part in ("train", "val", "test"):
        x, y = getattr(splits, f"{part}_x"), getattr(splits, f"{part}_y")
        if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1:] == width and
                x.dtype == dtype and dtype in (np.float32, np.float64)):
            raise SettingsError(f"splits.{part}_x: must be a float32 or float64 array of shape "
                                f"(N, features) like train_x, not {describe(x)}")
        if not (isinstance(y, np.ndarray) and y.shape == x.shape[:1] and
                np.issubdtype(y.dtype, np.integer) and
                (not len(y) or 0 <= y.min() <= y.max() < NUM_CLASSES)):
            raise SettingsError(f"splits.{part}_y: must be {len(x)} integer labels in "
                                f"0..{NUM_CLASSES - 1}, one per row of {part}_x, not "
                                f"{describe(y)}")
    if not len(splits.test_y):
        raise SettingsError("splits.test_x: holds no image; fit tests after the last epoch")


def describe(array: object) -> str:
    """``array``'s type, shape and dtype, in a few words."""
    if not isinstance(array, np.ndarray):
        return f"a {type(array).__name__}"
    return f"a {array.dtype} array of shape {array.shape}"


def check_switches(log_dir: object, insight: object, lockstep: object) -> None:
    """SettingsError unless ``insight`` and ``lockstep`` are bools and ``log_dir`` a path or
    None."""
    for name, value in (("insight", insight), ("lockstep", lockstep)):
        if not isinstance(value, bool | np.bool_):
            raise SettingsError(f"{name} {value!r}: must be True or False")
    if not (log_dir is None or isinstance(log_dir, str | Path)):
        raise SettingsError(f"log_dir {log_dir!r}: must be a folder's path (str or Path) or "
                            "None")


def check_device(device: str, names: list[str]) -> None:
    """CUDA must be there for a torch twin on ``"cuda"``."""
    if device == "cuda" and "torch" in names:
        import torch

        if not torch.cuda.is_available():
            raise SettingsError(f"device 'cuda': CUDA is not available to this torch "
                                f"{torch.__version__} (no GPU or driver); use 'cpu'")


def open_log_dir(log_dir: str | Path) -> Path:
    """``log_dir``, made if missing, checked to be a folder that holds no run yet."""
    folder = Path(log_dir)
    if folder.exists() and not folder.is_dir():
        raise SettingsError(f"log_dir {folder}: is a file, not a folder")
    if any(folder.glob("*/checkpoint.*")):
        raise SettingsError(f"log_dir {folder}: holds a run already; choose another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"log_dir {folder}: cannot be made ({error.strerror})") from None
    return folder


def script_meta(config: TrainConfig, splits: Splits, names: list[str], insight: bool,
                lockstep: bool) -> dict:
    """What each checkpoint of a script's run keeps: the network, the data's normalization and
    sizes, the settings; ``script`` marks it as a run ``compare train --resume`` cannot take
    up (it knows no data folder)."""
    return {**config.arch.to_meta(), "dtype": config.dtype, "script": "compare.fit",
            "mean": splits.mean, "std": splits.std, "seed": config.seed,
            "val_size": len(splits.val_y),
            "sizes": f"{len(splits.train_y)} / {len(splits.val_y)} / {len(splits.test_y)}",
            "config": config.to_json(), "backends": names, "lockstep": lockstep,
            "insight": insight}
