"""Lockstep: both twins from the same weights on the same batches, compared after every step.

``optimizer_lockstep`` measures how far the optimizers drift apart on random batches;
:class:`Lockstep` is ``compare train --lockstep``: the comparison the training loop makes after
each step of both twins, logged to ``runs/<run-name>/parity/``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from compare.harness import tolerance
from compare.harness.arch import Architecture, parse_dtype
from compare.harness.masks import shared_masks
from compare.insight.tensorboard_writer import SummaryWriter, written_points
from compare.training.backend import BACKEND_NAMES, Backend
from compare.training.build import build_backend
from compare.training.config import TrainConfig
from compare.training.divergence import TrainingError
from compare.training.optimizers import OptimizerSpec


class LockstepError(TrainingError):
    """Under --lockstep in float64, the twins' weights drifted apart beyond the limit."""


def optimizer_lockstep(arch: Architecture, optimizer: OptimizerSpec, *, steps: int,
                       dtype: str = "float64", batch_size: int = 32, seed: int = 0
                       ) -> list[float]:
    """Run ``steps`` optimizer steps in both twins from copied weights on the same random batches
    (and dropout masks, scratch's); return the weights' relative difference after every step."""
    config = TrainConfig(arch, optimizer, 1, batch_size, seed, dtype, "cpu")
    backends = [build_backend(name, config) for name in BACKEND_NAMES]
    rng = np.random.default_rng([seed, 2])
    x = rng.standard_normal((steps * batch_size, arch.widths[0])).astype(parse_dtype(dtype))
    y = rng.integers(0, arch.widths[-1], size=steps * batch_size)
    batches = zip(*(b.loader(x, y).batches(np.arange(len(y)), batch_size) for b in backends),
                  strict=True)
    for backend in backends:
        backend.start_epoch(steps)
    diffs = []
    with shared_masks(backends[0].model, backends[1].model):
        for step_batches in batches:
            for backend, (batch_x, batch_y) in zip(backends, step_batches, strict=True):
                backend.train_step(batch_x, batch_y)
            diffs.append(tolerance.state_rel_diff(backends[0].state_dict(),
                                                  backends[1].state_dict()))
    return diffs


class Lockstep:
    """The comparison after every step of a --lockstep run: how far apart the twins' weights and
    losses are, logged to ``folder`` (None: not logged); in float64 it stops the run when the
    weights differ by more than the limit. Use it as a context manager."""

    def __init__(self, folder: Path | None, dtype: str) -> None:
        self.dtype = dtype
        self.writer = None if folder is None else SummaryWriter(folder,
                                                                skip=written_points(folder))

    def __call__(self, backends: list[Backend], step: int) -> None:
        """Compare the twins ``backends`` (scratch, torch) after global step ``step``."""
        scratch_backend, torch_backend = backends
        weight_diff = tolerance.state_rel_diff(scratch_backend.state_dict(),
                                               torch_backend.state_dict())
        loss_diff = abs(float(scratch_backend.step_losses()[-1]) -
                        float(torch_backend.step_losses()[-1]))
        if self.writer is not None:
            self.writer.add_scalar("Parity/max_weight_rel_diff", weight_diff, step)
            self.writer.add_scalar("Parity/loss_abs_diff", loss_diff, step)
        limit = tolerance.TRAINING_LOCKSTEP_FLOAT64_MAX_REL
        if self.dtype == "float64" and not weight_diff <= limit:
            raise LockstepError(
                f"--lockstep: after step {step} (lr {scratch_backend.lr:g}) the float64 weights "
                f"differ by {weight_diff:.3e} relative, over the limit {limit:g}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.writer is not None:
            self.writer.close()
