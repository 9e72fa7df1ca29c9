"""The training step of the scratch twin: NumPy on the CPU, never torch."""

from __future__ import annotations

import numpy as np

import scratch
from compare.optimizers import OptimizerSpec


class ScratchBackend:
    """Trains ``model`` (ending in Softmax) on in-memory arrays with cross-entropy on its logits.

    ``train_x`` (N, features) and ``train_y`` (N,) int64 are shared, never copied; each step gathers
    its batch rows into a reused buffer.
    """

    name = "scratch"
    device = "cpu"

    def __init__(
        self,
        model: scratch.Sequential,
        optimizer: OptimizerSpec,
        train_x: np.ndarray,
        train_y: np.ndarray,
    ) -> None:
        self.model = model
        self.logits_model = model[:-1]  # shares the layers; the loss takes logits
        self.optimizer = optimizer.build_scratch(model.parameters())
        self.loss = scratch.CrossEntropyLoss()
        self.train_x, self.train_y = train_x, train_y
        self._batch: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._order = np.arange(len(train_y))
        self._losses = np.zeros(0)
        self._step = 0

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def start_epoch(self, order: np.ndarray, steps: int) -> None:
        """Take this epoch's sample order (N,) and make room for ``steps`` step losses."""
        self._order = order
        self._losses = np.zeros(steps)
        self._step = 0

    def gather(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """This step's batch: rows ``order[start:stop]`` gathered into a reused buffer."""
        size = stop - start
        if size not in self._batch:
            self._batch[size] = (
                np.zeros((size, self.train_x.shape[1]), self.train_x.dtype),
                np.zeros(size, self.train_y.dtype),
            )
        x, y = self._batch[size]
        rows = self._order[start:stop]
        np.take(self.train_x, rows, axis=0, out=x, mode="clip")
        np.take(self.train_y, rows, axis=0, out=y, mode="clip")
        return x, y

    def train_step(self, start: int, stop: int) -> None:
        """One SGD step on the samples ``order[start:stop]``."""
        x, y = self.gather(start, stop)
        self._losses[self._step] = self.loss.forward(self.logits_model.forward(x), y)
        self.logits_model.backward(self.loss.backward(), need_input_grad=False)
        self.optimizer.step()
        self._step += 1

    def step_losses(self) -> np.ndarray:
        """The losses of this epoch's steps so far (float64)."""
        return self._losses[: self._step]

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) over x (N, features), y (N,)."""
        loss_sum, correct = 0.0, 0
        for start in range(0, len(y), batch_size):
            logits = self.logits_model.forward(x[start : start + batch_size])
            target = y[start : start + batch_size]
            loss_sum += self.loss.forward(logits, target) * len(target)
            correct += int(np.count_nonzero(logits.argmax(axis=1) == target))
        return loss_sum / len(y), correct / len(y)

    def weights(self) -> list[np.ndarray]:
        """Each Linear's W (in, out) and b (out,), first layer first."""
        return [p.value for p in self.model.parameters()]

    def grad_norms(self) -> dict[str, float]:
        """L2 norm of the last step's dW of each Linear, by layer index."""
        return {
            f"{i}.weight": float(np.linalg.norm(layer.dW))
            for i, layer in enumerate(self.model)
            if isinstance(layer, scratch.Linear)
        }
