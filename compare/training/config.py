"""What a training run is: the settings, the batches of an epoch and their seeded order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compare.harness.arch import Architecture
from compare.training.optimizers import OptimizerSpec

SCHEDULES = ("constant", "cosine")


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

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: constant, or cosine from lr down to 0."""
        if self.schedule == "cosine":
            return self.optimizer.lr * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        return self.optimizer.lr


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
