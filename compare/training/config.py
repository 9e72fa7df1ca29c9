"""What a training run is: its settings, the batches of an epoch and their seeded order, and where
it stands (what a checkpoint stores so that the run can continue exactly)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from compare.harness.arch import DTYPES, Architecture
from compare.training.optimizers import OPTIMIZER_NAMES, OptimizerSpec, SettingsError

SCHEDULES = ("constant", "cosine")
DEVICES = ("cpu", "cuda")


def default_optimizer() -> OptimizerSpec:
    """Plain SGD at learning rate 0.1, as ``compare train`` without optimizer flags."""
    return OptimizerSpec.create("sgd", 0.1)


@dataclass(frozen=True)
class TrainConfig:
    """A run's settings, defaults as ``compare train``'s: ``arch`` trained by ``optimizer`` for
    ``epochs`` epochs of batches of ``batch_size`` images in ``dtype`` (``"float32"`` or
    ``"float64"``), every draw from ``seed``; ``device`` (``"cpu"`` or ``"cuda"``) is the torch
    twin's; ``schedule`` sets the learning rate per epoch (``"constant"`` or ``"cosine"``);
    ``patience`` (None: off) stops the run once no twin's validation loss has improved for that
    many epochs (:mod:`compare.training.early_stopping`)."""

    arch: Architecture
    optimizer: OptimizerSpec = field(default_factory=default_optimizer)
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    schedule: str = "constant"
    patience: int | None = None

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: constant, or cosine from lr down to 0."""
        if self.schedule == "cosine":
            return self.optimizer.lr * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        return self.optimizer.lr

    def check(self) -> None:
        """SettingsError naming the first setting no run can have."""
        counts = {"epochs": (self.epochs, 1), "batch_size": (self.batch_size, 1),
                  "seed": (self.seed, 0)}
        for name, (value, least) in counts.items():
            if not is_count(value, least):
                raise SettingsError(f"{name} {value!r}: must be a whole number >= {least}")
        if not (self.patience is None or is_count(self.patience, 1)):
            raise SettingsError(f"patience {self.patience!r}: must be a whole number >= 1 "
                                "(epochs without a better validation loss), or None for no "
                                "early stopping")
        choices = {"dtype": (self.dtype, tuple(DTYPES)), "device": (self.device, DEVICES),
                   "schedule": (self.schedule, SCHEDULES)}
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise SettingsError(f"{name} {value!r}: choose from {', '.join(allowed)}")
        if not isinstance(self.arch, Architecture):
            raise SettingsError(f"arch {self.arch!r}: must be an Architecture, such as "
                                "Architecture.parse('784-128-64-10', 'relu')")
        if self.arch.norm == "batch" and self.batch_size < 2:
            raise SettingsError("batch_size 1: batch norm normalizes each feature over the "
                                "batch, which needs at least 2 examples")
        check_optimizer(self.optimizer, self.dtype)

    def to_json(self) -> dict:
        return {**self.arch.to_meta(), "optimizer": asdict(self.optimizer), "epochs": self.epochs,
                "batch_size": self.batch_size, "seed": self.seed, "dtype": self.dtype,
                "device": self.device, "schedule": self.schedule,
                **({} if self.patience is None else {"patience": self.patience})}

    @classmethod
    def from_json(cls, saved: dict) -> TrainConfig:
        """The settings :meth:`to_json` wrote (KeyError, TypeError or ValueError when they are
        not), unchecked: :meth:`check` says whether a run can have them. Settings without
        ``patience`` (a run without early stopping, or of an earlier version) have None."""
        optimizer = saved["optimizer"]
        if optimizer["name"] in OPTIMIZER_NAMES:
            expected = OptimizerSpec.create(optimizer["name"], 1.0).settings
            if set(optimizer["settings"]) != set(expected):
                raise ValueError(f"{optimizer['name']} takes the settings {sorted(expected)}, "
                                 f"not {sorted(optimizer['settings'])}")
        return cls(Architecture.from_meta(saved), OptimizerSpec(**optimizer), saved["epochs"],
                   saved["batch_size"], saved["seed"], saved["dtype"], saved["device"],
                   saved["schedule"], saved.get("patience"))


def is_count(value: object, least: int = 0) -> bool:
    """An int (not a bool, not a float) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def is_amount(value: object) -> bool:
    """A finite, non-negative number (not a bool)."""
    return (isinstance(value, int | float) and not isinstance(value, bool) and
            math.isfinite(value) and value >= 0)


def check_optimizer(optimizer: OptimizerSpec, dtype: str) -> None:
    """SettingsError unless ``optimizer`` is one :meth:`OptimizerSpec.create` makes, with a
    weight decay that does not make training diverge by itself."""
    if not isinstance(optimizer, OptimizerSpec) or optimizer.name not in OPTIMIZER_NAMES:
        raise SettingsError(f"optimizer {optimizer!r}: make it with OptimizerSpec.create(name, "
                            f"lr), name one of {', '.join(OPTIMIZER_NAMES)}")
    settings = optimizer.settings
    if not (is_amount(optimizer.lr) and optimizer.lr > 0):
        raise SettingsError(f"optimizer lr {optimizer.lr!r}: must be a positive number")
    valid = (isinstance(settings, dict) and
             set(settings) == set(OptimizerSpec.create(optimizer.name, 1.0).settings) and
             is_amount(settings["weight_decay"]) and
             (optimizer.name != "momentum" or (is_amount(settings["momentum"]) and
                                               settings["momentum"] < 1 and
                                               isinstance(settings["nesterov"], bool))))
    if not valid:
        raise SettingsError(f"optimizer settings {settings!r}: not those OptimizerSpec.create "
                            f"makes for {optimizer.name}")
    limit, why = optimizer.weight_decay_limit(dtype)
    if settings["weight_decay"] >= limit:
        raise SettingsError(f"optimizer weight_decay {settings['weight_decay']:g}: training "
                            f"diverges whatever the data ({why}); choose one below {limit:.3g}")


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of an epoch over ``n`` samples; the last may be smaller, but
    holds one sample only when the epoch does: one left over joins the batch before it (batch
    norm cannot normalize a batch of one, and PyTorch's refuses it in training)."""
    bounds = [(start, min(n, start + batch_size)) for start in range(0, n, batch_size)]
    if batch_size > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def steps_per_epoch(n: int, batch_size: int) -> int:
    """How many batches, so optimizer steps, an epoch over ``n`` samples takes."""
    steps = -(-n // batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps


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


def check_shuffle_state(state: object, what: str = "the shuffle state") -> None:
    """ValueError unless ``state`` (``what`` the message calls it) is a state
    :meth:`EpochOrders.state` returns (NumPy's PCG64 state, as JSON keeps it)."""
    inner = state.get("state") if isinstance(state, dict) else None
    fields = {"state": 2**128, "inc": 2**128}
    if not (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32",
                                                         "uinteger"} and
            state["bit_generator"] == "PCG64" and isinstance(inner, dict) and
            set(inner) == set(fields) and
            all(is_count(inner[name]) and inner[name] < limit for name, limit in fields.items())
            and state["has_uint32"] in (0, 1) and is_count(state["has_uint32"]) and
            is_count(state["uinteger"]) and state["uinteger"] < 2**32):
        raise ValueError(f"{what} {state!r:.80} is not a PCG64 state")


@dataclass(frozen=True)
class Position:
    """Where a run stands: ``epoch`` epochs done and ``step`` steps of the next one (non-zero
    only after Ctrl-C), and the shuffle state before that next epoch's order was drawn."""

    epoch: int = 0
    step: int = 0
    shuffle_state: dict | None = None

    def global_step(self, steps_per_epoch: int) -> int:
        """The steps taken since the run began (the last one taken, 1-based)."""
        return self.epoch * steps_per_epoch + self.step

    def to_json(self, seconds: float) -> dict:
        """The position as checkpoint meta keeps it, with the ``seconds`` the twin spent on the
        steps of the epoch so far."""
        return {"epoch": self.epoch, "step": self.step, "shuffle_state": self.shuffle_state,
                "seconds": seconds}


BEGINNING = Position()
"""Where every run starts: no epoch and no step done yet."""
