"""The scratch twin behind the Backend interface: NumPy on the CPU, never torch."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

import scratch
from compare.harness.twins import StateDict, scratch_state_dict
from compare.layers import linear_weights
from compare.training import checkpoint
from compare.training.backend import (
    EVALUATION_ROWS,
    RATIO_FLOOR,
    VARIANCE_FLOOR,
    Evaluation,
    evaluation_mode,
    ratio_stride,
    segment_edges,
)
from compare.training.config import batch_bounds, check_shuffle_state
from compare.training.optimizer_state import check_optimizer_state
from compare.training.optimizers import OptimizerSpec


class ScratchLoader:
    """The training set in memory, x (N, features) and y (N,) int64, shared, never copied.

    Each batch is gathered into a buffer this loader owns, one per batch size, so a batch is
    valid until the next one is drawn.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self._buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def batches(self, order: np.ndarray, batch_size: int, first_step: int = 0
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start, stop in batch_bounds(len(order), batch_size)[first_step:]:
            if stop - start not in self._buffers:
                self._buffers[stop - start] = (
                    np.zeros((stop - start, self.x.shape[1]), self.x.dtype),
                    np.zeros(stop - start, self.y.dtype))
            x, y = self._buffers[stop - start]
            np.take(self.x, order[start:stop], axis=0, out=x, mode="clip")
            np.take(self.y, order[start:stop], axis=0, out=y, mode="clip")
            yield x, y


class WeightSamples:
    """The entries of each Linear weight (in, out) its update ratio is measured on, every s-th
    row and column (:func:`ratio_stride`), laid end to end in one buffer: row 0 as they were
    before a recorded step, row 1 after it; and the matrix that averages each weight's
    segment, so that one product gives every weight's moments."""

    def __init__(self, weights: list[np.ndarray]) -> None:
        """``weights``: the Linear weights, which the optimizer updates in place (the samples
        are views of them)."""
        strides = [ratio_stride(w.shape) for w in weights]
        self.sampled = [w[::s, ::s] for w, s in zip(weights, strides, strict=True)]
        shapes = [sample.shape for sample in self.sampled]
        edges = segment_edges(shapes)
        self.flat = np.empty((2, edges[-1]), weights[0].dtype)
        self.views = [[self.flat[row, start:stop].reshape(shape) for start, stop, shape in
                       zip(edges, edges[1:], shapes, strict=False)] for row in (0, 1)]
        self.averaging = np.zeros((edges[-1], len(weights)), weights[0].dtype)
        for column, (start, stop) in enumerate(itertools.pairwise(edges)):
            self.averaging[start:stop, column] = 1 / (stop - start)

    def take(self, row: int) -> None:
        """Copy the sampled entries of the weights into ``row`` (0: before, 1: after)."""
        for sample, view in zip(self.sampled, self.views[row], strict=True):
            np.copyto(view, sample)

    def log10_ratios(self) -> np.ndarray:
        """(weights,): log10 of std(update) / std(weight) of each, from the entries taken
        before and after the step; variances as E[x²] - E[x]², exact enough where the mean is
        small against the spread (weights and their updates)."""
        self.flat[0] -= self.flat[1]  # minus the update: the same spread
        moments = np.concatenate([self.flat, np.square(self.flat)]) @ self.averaging
        variance = moments[2:] - np.square(moments[:2])  # (update, weight) x weights
        ratio = variance[0] / np.maximum(variance[1], VARIANCE_FLOOR)
        return np.log10(np.maximum(ratio, RATIO_FLOOR**2)) / 2


class ScratchBackend:
    """Trains ``model`` (ending in Softmax) with cross-entropy on its logits; without an
    ``optimizer`` it only evaluates."""

    name = "scratch"
    device = "cpu"
    checkpoint_suffix = ".npz"

    def __init__(self, model: scratch.Sequential, optimizer: OptimizerSpec | None = None) -> None:
        self.model = model
        self.logits_model = model[:-1]  # shares the layers; the loss takes logits
        self.spec = optimizer
        self.optimizer = optimizer.build_scratch(model.parameters()) if optimizer else None
        self.loss = scratch.CrossEntropyLoss()
        self.weights = linear_weights(model)
        self.samples = WeightSamples([p.value for _, p in self.weights])
        self.start_epoch(0)
        self.dropouts = {str(index): layer for index, layer in enumerate(model)
                         if isinstance(layer, scratch.Dropout)}

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def loader(self, x: np.ndarray, y: np.ndarray) -> ScratchLoader:
        return ScratchLoader(x, y)

    def start_epoch(self, steps: int, norm_steps: Sequence[int] = (),
                    ratio_steps: Sequence[int] = ()) -> None:
        self._losses = np.zeros(steps)
        self._norm_rows = {step: row for row, step in enumerate(norm_steps)}
        self._ratio_rows = {step: row for row, step in enumerate(ratio_steps)}
        self._norms = np.zeros((len(norm_steps), len(self.weights)))
        self._ratios = np.zeros((len(ratio_steps), len(self.weights)))
        self._step = 0

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        """One optimizer step on the batch x (B, features), y (B,)."""
        self._losses[self._step] = self.loss.forward(self.logits_model.forward(x), y)
        self.logits_model.backward_parameters(self.loss.backward())
        row = self._norm_rows.get(self._step)
        if row is not None:
            for column, (_, weight) in enumerate(self.weights):
                self._norms[row, column] = np.linalg.norm(weight.grad)
        row = self._ratio_rows.get(self._step)
        if row is None:
            self.optimizer.step()
        else:
            self.step_measuring_update(row)
        self._step += 1

    def step_measuring_update(self, row: int) -> None:
        """The optimizer's step, recording each weight's update ratio in ``row``."""
        self.samples.take(0)
        self.optimizer.step()
        self.samples.take(1)
        self._ratios[row] = self.samples.log10_ratios()

    def step_losses(self) -> np.ndarray:
        return self._losses[: self._step]

    def step_grad_norms(self) -> np.ndarray:
        return self._norms[: self.taken(self._norm_rows)]

    def step_update_ratios(self) -> np.ndarray:
        return self._ratios[: self.taken(self._ratio_rows)]

    def taken(self, rows: dict[int, int]) -> int:
        """How many of the epoch's steps in ``rows`` are taken."""
        return sum(step < self._step for step in rows)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = EVALUATION_ROWS, *,
                 keep_outputs: bool = False) -> Evaluation:
        loss_sum, correct, kept = 0.0, 0, []
        for start in range(0, len(y), batch_size):
            with evaluation_mode(self.model):
                outputs = self.layer_outputs(x[start : start + batch_size])
            logits, target = outputs[-2], y[start : start + batch_size]  # before the Softmax
            loss_sum += self.loss.forward(logits, target) * len(target)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == target))
            kept += [outputs] if keep_outputs else []
        return Evaluation(loss_sum / len(y), correct / len(y),
                          [np.concatenate(per_layer) for per_layer in zip(*kept, strict=True)])

    def layer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """The output of every layer for x, first layer first."""
        outputs = []
        for layer in self.model:
            x = layer.forward(x)
            outputs.append(x)
        return outputs

    def state_dict(self) -> StateDict:
        return scratch_state_dict(self.model)

    def grad_norms(self) -> dict[str, float]:
        """The norm of each Linear weight's gradient, by its name in the state dict (a norm
        does not see scratch's transposed layout)."""
        return {name: float(np.linalg.norm(p.grad)) for name, p in self.weights}

    def save_checkpoint(self, path: Path, meta: dict, progress: dict[str, np.ndarray]) -> None:
        optimizer = self.optimizer.state_dict() if self.optimizer else None
        random = {"random_state": self.random_state()} if self.dropouts else {}
        checkpoint.save_npz(path, self.state_dict(), meta | random, optimizer, progress)

    def random_state(self) -> dict[str, dict]:
        """Each Dropout's generator state (NumPy's PCG64 dict, as JSON keeps it), by the
        layer's index in the network."""
        return {index: layer.rng.bit_generator.state for index, layer in self.dropouts.items()}

    def load_random_state(self, saved: object) -> None:
        """Continue each Dropout's draws from ``saved`` (a :meth:`random_state`), checked first
        (ValueError naming the layer)."""
        if not self.dropouts:
            return
        if not saved:
            raise ValueError("it holds no state of its Dropout layers' generators (written "
                             "before they were saved): the run cannot continue exactly; start "
                             "it again")
        if not (isinstance(saved, dict) and saved.keys() == self.dropouts.keys()):
            found = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(f"it holds the generator states of layers {found}, not of the "
                             f"Dropout layers {sorted(self.dropouts)}")
        for index, state in saved.items():
            check_shuffle_state(state, f"layer {index} (Dropout)'s generator state")
        for index, layer in self.dropouts.items():
            layer.rng.bit_generator.state = saved[index]

    def load_optimizer_state(self, state: dict, steps_taken: int) -> None:
        """A ``scratch.optim`` state_dict after ``steps_taken`` steps, checked array by array
        first (ValueError); the settings stay the run's."""
        parameters = [(p.value.shape, p.value.dtype) for p in self.model.parameters()]
        checked = check_optimizer_state(state, self.name, self.spec, parameters, steps_taken)
        self.optimizer.load_state_dict({"state": checked, "step": steps_taken})
