"""The interface both twins implement, so that one training loop drives either (built by
:mod:`compare.training.build`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from compare.harness.twins import StateDict

BACKEND_NAMES = ("scratch", "torch")
EVALUATION_ROWS = 1000
"""How many images a backend evaluates at a time."""
RATIO_FLOOR, VARIANCE_FLOOR = 1e-10, 1e-30
"""An update ratio below 1e-10 (log10 -10: a step that changed nothing) reads 1e-10, and a
weight's variance is taken as at least 1e-30 (all-zero weights), so the log is finite in
float32 too."""
RATIO_SAMPLE = 4096


def ratio_stride(shape: tuple[int, ...]) -> int:
    """s: the update ratio of a weight of ``shape`` is measured on every s-th row and column
    of it, the largest s that leaves at least ``RATIO_SAMPLE`` entries (1, all of it, under
    16,384; 4 for 784x128: 6,272 entries). The same entries in either layout (a transpose
    keeps them), and a quarter of the memory a recorded step reads; the ratio is an estimate
    of the whole weight's (the README says how close)."""
    return max(1, math.isqrt(math.prod(shape) // RATIO_SAMPLE))


def segment_edges(shapes: list[tuple[int, ...]]) -> list[int]:
    """Where each of arrays of ``shapes``, laid end to end, starts, and where the last ends."""
    return [0, *itertools.accumulate(math.prod(shape) for shape in shapes)]


@dataclass
class Evaluation:
    """What a pass over a set of examples found: mean cross-entropy, accuracy, and (when asked
    for) the output of every layer, (N, width) each, first layer first."""

    loss: float
    accuracy: float
    outputs: list[np.ndarray] = field(default_factory=list)


class Loader(Protocol):
    """A training set held where the backend computes (memory, or a GPU)."""

    def batches(self, order: np.ndarray, batch_size: int, first_step: int = 0
                ) -> Iterator[tuple[Any, Any]]:
        """(x (B, features), y (B,)) for rows ``order[start:stop]`` of each batch of the epoch,
        from batch ``first_step`` on. A batch may be overwritten by the next one."""
        ...


class Backend(Protocol):
    """One twin, its optimizer and its loss: a train step, evaluation, and state for checkpoints.

    ``start_epoch(steps)``, then ``train_step(x, y)`` per batch, then ``step_losses()``: a backend
    keeps the epoch's step losses where it computes them and hands them over once.
    """

    name: str  # "scratch" or "torch"
    model: Any  # the twin's network: scratch.Sequential or nn.Sequential
    device: str
    checkpoint_suffix: str
    lr: float

    def loader(self, x: np.ndarray, y: np.ndarray) -> Loader: ...

    def start_epoch(self, steps: int, norm_steps: Sequence[int] = (),
                    ratio_steps: Sequence[int] = ()) -> None:
        """Make room for ``steps`` step losses, for the weight-gradient norms of the steps at
        positions ``norm_steps`` and for the update ratios of those at ``ratio_steps`` (0-based,
        counted from this call)."""
        ...

    def train_step(self, x: Any, y: Any) -> None: ...

    def step_losses(self) -> np.ndarray:
        """The losses of the steps since ``start_epoch`` (float64)."""
        ...

    def step_grad_norms(self) -> np.ndarray:
        """(steps recorded so far, Linear layers): the L2 norm of each Linear weight's gradient
        at each of the ``norm_steps`` taken so far (float64)."""
        ...

    def step_update_ratios(self) -> np.ndarray:
        """(steps recorded so far, Linear layers): log10 of std(update) / std(weight) of each
        Linear weight at each of the ``ratio_steps`` taken so far, the update being what the
        optimizer's step changed and the weight what it left, both on the entries
        :func:`ratio_stride` picks (float64; floored at log10 ``RATIO_FLOOR``)."""
        ...

    def evaluate(self, x: np.ndarray, y: np.ndarray, *, keep_outputs: bool = False
                 ) -> Evaluation:
        """Mean cross-entropy and accuracy over x (N, features), y (N,); with ``keep_outputs``,
        also the output of every layer (as NumPy arrays, first layer first)."""
        ...

    def state_dict(self) -> StateDict:
        """The weights, by PyTorch's names and in PyTorch's layout (see compare.harness.twins)."""
        ...

    def grad_norms(self) -> dict[str, float]:
        """L2 norm of the last step's gradient of each Linear weight, by parameter name."""
        ...

    def save_checkpoint(self, path: Path, meta: dict, progress: dict[str, np.ndarray]) -> None:
        """Weights, optimizer state, ``meta`` and the interrupted epoch's ``progress`` arrays."""
        ...

    def load_optimizer_state(self, state: dict, steps_taken: int) -> None:
        """Continue from the optimizer state a checkpoint of this twin holds after
        ``steps_taken`` steps, checked first (ValueError naming the entry)."""
        ...

    def load_random_state(self, saved: dict) -> None:
        """Continue the Dropout layers' draws from the random state a checkpoint of this twin
        holds, checked first (ValueError; one missing for a network with Dropout too)."""
        ...


@contextmanager
def evaluation_mode(model: Any) -> Iterator[None]:
    """``model`` (of either twin) in evaluation mode, back in training mode after."""
    model.eval()
    try:
        yield
    finally:
        model.train()
