"""Train the twins on identical batches and log both to TensorBoard under the same tags.

Both backends start from one draw of initial weights (scratch draws, the harness copies it into
torch) and see the same batches: one seeded permutation of the training set per epoch.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compare import checkpoint
from compare.arch import Architecture
from compare.backend_scratch import ScratchBackend
from compare.data import Splits
from compare.optimizers import OptimizerSpec
from compare.tensorboard_writer import SummaryWriter
from compare.threads import blas_thread_policy
from compare.tolerance import weight_rel_diff

LOCKSTEP_FLOAT64_LIMIT = 1e-9
SCHEDULES = ("constant", "cosine")


class TrainingError(Exception):
    """Training stopped: a non-finite loss, or the twins drifted apart under --lockstep."""


@dataclass(frozen=True)
class TrainConfig:
    arch: Architecture
    optimizer: OptimizerSpec
    epochs: int
    batch_size: int
    seed: int
    dtype: str
    device: str
    schedule: str = "constant"
    lockstep: bool = False

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: constant, or cosine from lr down to 0."""
        if self.schedule == "cosine":
            return self.optimizer.lr * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        return self.optimizer.lr


@dataclass
class BackendResult:
    backend: str
    device: str
    test_accuracy: float
    final_train_loss: float
    epoch_seconds: list[float]
    run_dir: str


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of an epoch over ``n`` samples; the last may be smaller."""
    return [(start, min(n, start + batch_size)) for start in range(0, n, batch_size)]


class EpochOrders:
    """One seeded permutation of the training set per epoch, in a reused buffer."""

    def __init__(self, size: int, seed: int) -> None:
        self._rng = np.random.default_rng([seed, 4])
        self.order = np.arange(size)

    def next(self) -> np.ndarray:
        self.order.sort()  # restart from 0..N-1, so epoch k's order depends on the seed alone
        self._rng.shuffle(self.order)
        return self.order


def build_backend(name: str, config: TrainConfig, splits: Splits) -> Any:
    """The backend ``name`` holding the initial weights drawn from ``config.seed``."""
    model = config.arch.build_scratch(seed=config.seed, dtype=config.dtype)
    if name == "scratch":
        return ScratchBackend(model, config.optimizer, splits.train_x, splits.train_y)
    from compare.backend_torch import TorchBackend
    from compare.weights import scratch_to_torch

    reference = config.arch.build_torch(dtype=config.dtype, device=config.device)
    scratch_to_torch(model, reference)
    return TorchBackend(reference, config.optimizer, splits.train_x, splits.train_y)


def _save(backend: Any, path: Path, meta: dict) -> None:
    if backend.name == "scratch":
        checkpoint.save_scratch(path, backend.model, meta)
    else:
        checkpoint.save_torch(path, backend.model, meta)


class _Progress:
    """A tqdm bar per epoch on a terminal; otherwise nothing until the epoch's one line."""

    def __init__(self, label: str, steps: int, quiet: bool) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=label, leave=False, unit="step")

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(
    backend_names: list[str], config: TrainConfig, splits: Splits, run_dir: Path,
    meta: dict, *, log: Any = print, quiet: bool = False,
) -> list[BackendResult]:
    """Train each backend (one after the other, or step by step together with lockstep), under
    the BLAS thread policy for this batch size (``compare.threads``)."""
    groups = [backend_names] if config.lockstep else [[name] for name in backend_names]
    with blas_thread_policy(config.batch_size):
        return [result for group in groups
                for result in _train_together(group, config, splits, run_dir, meta, log, quiet)]


def _train_together(names: list[str], config: TrainConfig, splits: Splits, run_dir: Path,
                    meta: dict, log: Any, quiet: bool) -> list[BackendResult]:
    backends = [build_backend(name, config, splits) for name in names]
    writers = [SummaryWriter(run_dir / b.name) for b in backends]
    parity = SummaryWriter(run_dir / "parity") if config.lockstep else None
    paths = [run_dir / b.name / f"checkpoint{checkpoint.SUFFIXES[b.name]}" for b in backends]
    for backend, path in zip(backends, paths):
        _save(backend, path, meta | {"backend": backend.name, "epoch": 0})
        writers[backends.index(backend)].add_text("hparams", _hparams_markdown(config, meta))
    orders = EpochOrders(len(splits.train_y), config.seed)
    bounds = batch_bounds(len(splits.train_y), config.batch_size)
    steps = len(bounds)
    seconds: list[list[float]] = [[] for _ in backends]
    train_losses = [math.nan for _ in backends]
    try:
        for epoch in range(config.epochs):
            lr = config.lr_at(epoch)
            order = orders.next()
            elapsed = [0.0 for _ in backends]
            for i, backend in enumerate(backends):
                backend.lr = lr
                started = time.perf_counter()
                backend.start_epoch(order, steps)
                elapsed[i] += time.perf_counter() - started
            progress = _Progress(f"epoch {epoch + 1}/{config.epochs}", steps, quiet)
            for step, (start, stop) in enumerate(bounds):
                for i, backend in enumerate(backends):
                    started = time.perf_counter()
                    backend.train_step(start, stop)
                    elapsed[i] += time.perf_counter() - started
                if parity is not None:
                    _check_lockstep(backends, parity, epoch * steps + step + 1, config, lr)
                progress.update()
            progress.close()
            for i, backend in enumerate(backends):
                started = time.perf_counter()
                losses = backend.step_losses()  # on CUDA: the epoch's one synchronisation
                elapsed[i] += time.perf_counter() - started
                _stop_if_not_finite(backend, losses, epoch, steps, lr, paths[i])
                seconds[i].append(elapsed[i])
                train_losses[i] = float(losses.mean())
                # --val-size 0: no validation split, so no validation figures
                validation = (backend.evaluate(splits.val_x, splits.val_y) if len(splits.val_y)
                              else None)
                _log_epoch(writers[i], backend, epoch + 1, train_losses[i], validation,
                           elapsed[i])
                _save(backend, paths[i], meta | {"backend": backend.name, "epoch": epoch + 1})
                val_text = ("no validation split" if validation is None else
                            f"val loss {validation[0]:.4f}, val accuracy {validation[1]:.4f}")
                log(f"{backend.name:>7} epoch {epoch + 1}/{config.epochs}: train loss "
                    f"{train_losses[i]:.4f}, {val_text}, {elapsed[i]:.2f} s, lr {lr:g}")
        results = []
        for i, backend in enumerate(backends):
            _, test_accuracy = backend.evaluate(splits.test_x, splits.test_y)
            writers[i].add_scalar("Accuracy/test", test_accuracy, config.epochs)
            writers[i].add_hparams(
                _hparams(config, meta),
                {"hparam/test_accuracy": test_accuracy, "hparam/final_train_loss": train_losses[i]},
                step=config.epochs,
            )
            results.append(BackendResult(backend.name, str(backend.device), test_accuracy,
                                         train_losses[i], seconds[i], str(run_dir / backend.name)))
            log(f"{backend.name:>7} test accuracy {test_accuracy:.4f}")
        return results
    finally:
        for writer in [*writers, *([parity] if parity else [])]:
            writer.close()


def _check_lockstep(backends: list[Any], parity: SummaryWriter, global_step: int,
                    config: TrainConfig, lr: float) -> None:
    mine, theirs = backends
    weight_diff = weight_rel_diff(mine.weights(), theirs.weights())
    loss_diff = abs(float(mine.step_losses()[-1]) - float(theirs.step_losses()[-1]))
    parity.add_scalar("Parity/max_weight_rel_diff", weight_diff, global_step)
    parity.add_scalar("Parity/loss_abs_diff", loss_diff, global_step)
    if config.dtype == "float64" and not weight_diff <= LOCKSTEP_FLOAT64_LIMIT:
        raise TrainingError(
            f"--lockstep: after step {global_step} (lr {lr:g}) the float64 weights differ by "
            f"{weight_diff:.3e} relative, over the limit {LOCKSTEP_FLOAT64_LIMIT:g}")


def _stop_if_not_finite(backend: Any, losses: np.ndarray, epoch: int, steps: int, lr: float,
                        kept: Path) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        step = epoch * steps + int(bad[0]) + 1
        raise TrainingError(
            f"{backend.name}: loss is {losses[bad[0]]} at step {step} (epoch {epoch + 1}) with "
            f"learning rate {lr:g}; try a smaller --lr. The last good checkpoint (epoch {epoch}) "
            f"is kept at {kept}")


def _log_epoch(writer: SummaryWriter, backend: Any, epoch: int, train_loss: float,
               validation: tuple[float, float] | None, seconds: float) -> None:
    """One epoch's scalars and weight histograms; ``validation`` is (loss, accuracy), if any."""
    writer.add_scalar("Loss/train", train_loss, epoch)
    if validation is not None:
        writer.add_scalar("Loss/val", validation[0], epoch)
        writer.add_scalar("Accuracy/val", validation[1], epoch)
    writer.add_scalar("Time/epoch_seconds", seconds, epoch)
    for layer, norm in backend.grad_norms().items():
        writer.add_scalar(f"GradNorm/{layer}", norm, epoch)
    for index, weight in enumerate(backend.weights()):
        name = f"{2 * (index // 2)}.{'weight' if index % 2 == 0 else 'bias'}"
        writer.add_histogram(f"Weights/{name}", weight, epoch)
    writer.flush()


def _hparams(config: TrainConfig, meta: dict) -> dict[str, float | int | str | bool]:
    return {
        "arch": config.arch.spec, "activation": config.arch.activation,
        "optimizer": config.optimizer.name, "lr": config.optimizer.lr,
        "batch_size": config.batch_size, "epochs": config.epochs, "seed": config.seed,
        "dtype": config.dtype, "schedule": config.schedule, "dataset": meta["dataset"],
        **{k: v for k, v in config.optimizer.settings.items() if isinstance(v, int | float)},
    }


def _hparams_markdown(config: TrainConfig, meta: dict) -> str:
    rows = [*_hparams(config, meta).items(), ("normalization mean", meta["mean"]),
            ("normalization std", meta["std"]), ("train / val / test", meta["sizes"])]
    return "| setting | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def results_json(result: BackendResult) -> str:
    return json.dumps(asdict(result))
