"""The bench's yardsticks: each library's plainest training loop, run on the same batches as the
product's epoch, on a second copy of the network.

- torch: PyTorch's textbook loop: ``X[index]`` each step, ``F.cross_entropy``, ``zero_grad``,
  ``backward``, the step of a default ``torch.optim.SGD``.
- scratch: the whole step written out inline in NumPy with as few array calls as it takes: no
  layer objects, the activations and the softmax computed in place, one SGD update on the flat
  parameter array.

Both do the work of the product's SGD step: cross-entropy on the logits, every weight and bias
updated; tests check that an epoch of either leaves the same weights as the product's epoch. The
time of the product's epoch over its yardstick's is what the product's structure (layer objects,
buffers, checks) costs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import scratch
from compare.backend_scratch import ScratchBackend
from scratch.module import flatten_parameters

Activation = tuple[Callable[[np.ndarray], None],
                   Callable[[np.ndarray, np.ndarray, np.ndarray], None]]


def _relu(h: np.ndarray) -> None:
    np.maximum(h, 0, out=h)


def _relu_grad(y: np.ndarray, dy: np.ndarray, work: np.ndarray) -> None:
    np.greater(y, 0, out=work)
    dy *= work


def _sigmoid(h: np.ndarray) -> None:
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: no exponent to overflow
    h *= 0.5
    np.tanh(h, out=h)
    h += 1
    h *= 0.5


def _sigmoid_grad(y: np.ndarray, dy: np.ndarray, work: np.ndarray) -> None:
    np.subtract(1, y, out=work)
    work *= y
    dy *= work


def _tanh(h: np.ndarray) -> None:
    np.tanh(h, out=h)


def _tanh_grad(y: np.ndarray, dy: np.ndarray, work: np.ndarray) -> None:
    np.multiply(y, y, out=work)
    np.subtract(1, work, out=work)
    dy *= work


INLINE_ACTIVATIONS: dict[type, Activation] = {
    scratch.ReLU: (_relu, _relu_grad),
    scratch.Sigmoid: (_sigmoid, _sigmoid_grad),
    scratch.Tanh: (_tanh, _tanh_grad),
}
"""Each activation layer of scratch as (forward in place on its output, backward: multiply the
upstream gradient by the derivative computed from the output, using a work array)."""


class NumpyPlainLoop:
    """The scratch yardstick: SGD on ``backend``'s network and data, every step written out inline.

    The backend lends its weights (views of its optimizer's flat arrays), its training set and
    nothing else: none of its layer, loss or optimizer code runs here.
    """

    def __init__(self, backend: ScratchBackend, lr: float) -> None:
        layers = list(backend.logits_model)
        self.linears = [layer for layer in layers if isinstance(layer, scratch.Linear)]
        self.activation = INLINE_ACTIVATIONS[type(layers[1])] if len(layers) > 1 else None
        self.values, self.grads = flatten_parameters(backend.model.parameters())
        self.update = np.zeros_like(self.values)
        self.train_x, self.train_y, self.lr = backend.train_x, backend.train_y, lr
        self.losses = np.zeros(0)
        self._buffers: dict[int, tuple[list[np.ndarray], ...]] = {}

    def _work_buffers(self, size: int) -> tuple[list[np.ndarray], ...]:
        """For a batch of ``size`` rows: the outputs of the input and of every layer (input first),
        the gradients and work arrays of the hidden ones, and the loss's small arrays."""
        if size not in self._buffers:
            dtype = self.values.dtype
            widths = [self.linears[0].in_features] + [lin.out_features for lin in self.linears]
            outputs = [np.zeros((size, width), dtype) for width in widths]
            grads = [np.zeros((size, width), dtype) for width in widths[:-1]]
            works = [np.zeros((size, width), dtype) for width in widths[:-1]]
            loss = [np.zeros(size, self.train_y.dtype), np.arange(size), np.ones(size, dtype),
                    np.zeros((size, 1), dtype), np.zeros((size, 1), dtype)]
            self._buffers[size] = outputs, grads, works, loss
        return self._buffers[size]

    def epoch(self, batches: Sequence[tuple[int, int]], order: np.ndarray) -> None:
        """One SGD step per batch of rows ``order[start:stop]``; each step's loss lands in
        ``self.losses``."""
        forward, backward = self.activation or (None, None)
        last = len(self.linears) - 1
        self.losses = np.zeros(len(batches))
        for step, (start, stop) in enumerate(batches):
            outputs, grads, works, (y, rows, ones, top, total) = self._work_buffers(stop - start)
            index = order[start:stop]
            np.take(self.train_x, index, axis=0, out=outputs[0], mode="clip")
            np.take(self.train_y, index, out=y, mode="clip")
            for i, linear in enumerate(self.linears):
                h = outputs[i + 1]
                np.matmul(outputs[i], linear.W, out=h)
                h += linear.b
                if i < last:
                    forward(h)
            # softmax cross-entropy: loss = mean(log Σ exp(z - max) - (z - max)[target]),
            # dL/dz = (softmax(z) - onehot(target)) / N, all in the logits' buffer
            z = outputs[-1]
            np.max(z, axis=1, keepdims=True, out=top)
            z -= top
            target_logit = z[rows, y]
            np.exp(z, out=z)
            np.sum(z, axis=1, keepdims=True, out=total)
            self.losses[step] = np.log(total).mean() - target_logit.mean()
            z /= total
            z[rows, y] -= 1
            z *= 1 / len(rows)
            grad = z
            for i in range(last, -1, -1):
                linear = self.linears[i]
                np.matmul(outputs[i].T, grad, out=linear.dW)
                np.matmul(ones, grad, out=linear.db)
                if i:
                    np.matmul(grad, linear.W.T, out=grads[i])
                    backward(outputs[i], grads[i], works[i])
                    grad = grads[i]
            np.multiply(self.grads, self.lr, out=self.update)
            self.values -= self.update


class TorchPlainLoop:
    """The torch yardstick: PyTorch's textbook loop with a default ``torch.optim.SGD`` on
    ``backend``'s model and data (the backend's own optimizer stays unused)."""

    def __init__(self, backend: Any, lr: float) -> None:
        import torch

        self.model, self.device = backend.logits_model, backend.device
        self.train_x, self.train_y = backend.train_x, backend.train_y
        self.optimizer = torch.optim.SGD(backend.model.parameters(), lr=lr)

    def epoch(self, batches: Sequence[tuple[int, int]], order: np.ndarray) -> None:
        """One SGD step per batch of rows ``order[start:stop]``."""
        import torch
        import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling

        rows = torch.from_numpy(order).to(self.device)
        for start, stop in batches:
            index = rows[start:stop]
            loss = F.cross_entropy(self.model(self.train_x[index]), self.train_y[index])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()


PLAIN_LOOPS: dict[str, type] = {"scratch": NumpyPlainLoop, "torch": TorchPlainLoop}
