"""What a training run is: its settings, the batches of an epoch and their seeded order, and how
far it has come (what a checkpoint stores so that the run can continue exactly)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

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

    def to_json(self) -> dict:
        return {**self.arch.to_meta(), "optimizer": asdict(self.optimizer), "epochs": self.epochs,
                "batch_size": self.batch_size, "seed": self.seed, "dtype": self.dtype,
                "device": self.device, "schedule": self.schedule}

    @classmethod
    def from_json(cls, saved: dict) -> TrainConfig:
        return cls(Architecture.from_meta(saved),
                   OptimizerSpec(**saved["optimizer"]), saved["epochs"], saved["batch_size"],
                   saved["seed"], saved["dtype"], saved["device"], saved["schedule"])


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of an epoch over ``n`` samples; the last may be smaller."""
    return [(start, min(n, start + batch_size)) for start in range(0, n, batch_size)]


class EpochOrders:
    """One seeded permutation of the training set per epoch, in a reused buffer.

    ``state()`` is the generator's state before the next epoch's shuffle; passing it back as
    ``state`` gives that epoch's order and every later one again.
    """

    def __init__(self, size: int, seed: int, state: dict | None = None) -> None:
        self._rng = np.random.default_rng([seed, 4])
        if state is not None:
            self._rng.bit_generator.state = state
        self.order = np.arange(size)

    def state(self) -> dict:
        return self._rng.bit_generator.state

    def next(self) -> np.ndarray:
        self.order.sort()  # restart from 0..N-1, so epoch k's order depends on the seed alone
        self._rng.shuffle(self.order)
        return self.order


@dataclass
class Position:
    """How far a twin has trained: ``epoch`` epochs done and ``step`` steps of the next one
    (non-zero only after Ctrl-C), the shuffle state before that next epoch, and what the steps
    done so far in it recorded (their losses, the weight-gradient norms of the recorded ones,
    and the seconds they took)."""

    epoch: int = 0
    step: int = 0
    shuffle_state: dict | None = None
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    grad_norms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def records(self) -> dict[str, np.ndarray]:
        """The arrays a checkpoint keeps for an epoch cut short."""
        return {"losses": self.losses, "grad_norms": self.grad_norms}

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "shuffle_state": self.shuffle_state,
                "seconds": self.seconds}
