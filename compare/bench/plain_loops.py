"""The bench's yardsticks: each library's plainest training loop, run on the same batches as the
product's epoch, on a second copy of the network.

- torch: PyTorch's textbook loop: ``X[index]`` each step, ``F.cross_entropy``, ``zero_grad``,
  ``backward``, the step of a default ``torch.optim.SGD``.
- scratch: the whole step written out inline in NumPy with as few array calls as it takes: no
  layer objects, the activations and the softmax computed in place, one SGD update on the flat
  parameter array. A normalization or dropout has no inline code: with one, a hidden layer's
  layers (norm, activation, dropout) run their own forward and backward, the product's code, so
  the product over its yardstick then prices the rest of the step (the loop, the Linear layers,
  loss, optimizer), not those layers.

Both do the work of the product's SGD step: cross-entropy on the logits, every weight and bias
updated; tests check that an epoch of either leaves the same weights as the product's epoch. The
time of the product's epoch over its yardstick's is what the product's structure (layer objects,
fresh arrays, checks) costs.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.layers import kind_of
from compare.training.config import batch_bounds
from compare.training.scratch_backend import ScratchBackend, ScratchLoader

if TYPE_CHECKING:
    from compare.training.torch_backend import TorchBackend, TorchLoader

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


def _identity(h: np.ndarray) -> None:
    pass


def _identity_grad(y: np.ndarray, dy: np.ndarray, work: np.ndarray) -> None:
    pass


INLINE_ACTIVATIONS: dict[str, Activation] = {
    "relu": (_relu, _relu_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "tanh": (_tanh, _tanh_grad),
    "none": (_identity, _identity_grad),
}
"""Activations of the layer table, by name, as (forward in place on its output, backward: multiply
the upstream gradient by the derivative computed from the output, using a work array). Another
activation, or an activation with a normalization or dropout beside it, runs its layers' own
forward and backward (:func:`layers_activation`)."""


def layers_activation(layers: list[scratch.Module]) -> Activation:
    """Scratch layers run one after the other as one :data:`Activation`: for what has no inline
    code (an activation the table added later, a normalization, dropout)."""
    def forward(h: np.ndarray) -> None:
        x = h.copy()  # a layer may keep its input for backward; h is overwritten
        for layer in layers:
            x = layer.forward(x)
        h[...] = x

    def backward(y: np.ndarray, dy: np.ndarray, work: np.ndarray) -> None:
        grad = dy
        for layer in reversed(layers):
            grad = layer.backward(grad)
        dy[...] = grad

    return forward, backward


def hidden_activations(layers: list[scratch.Module]) -> list[Activation]:
    """What runs between each two Linear layers of ``layers`` (a normalization, an activation,
    dropout), as one :data:`Activation` per hidden layer. ValueError naming the layer where the
    network is not Linear layers, logits last, with layers of the table between them."""
    kinds = [kind_of(layer) for layer in layers]
    linear = [kind is not None and kind.name == "linear" for kind in kinds]
    for index, kind in enumerate(kinds):
        if kind is None or kind.name == "softmax" or (index in (0, len(kinds) - 1)
                                                       and not linear[index]):
            raise ValueError(f"the yardstick needs a Linear layer first and last (the "
                             f"logits) and layers of the table between; layer {index} "
                             f"({type(layers[index]).__name__}) does not fit")
    starts = [index for index, is_linear in enumerate(linear) if is_linear]
    return [inline_or_layers(layers[start + 1 : stop]) for start, stop in pairwise(starts)]


def inline_or_layers(layers: list[scratch.Module]) -> Activation:
    """The inline code of a lone activation that has it, else the layers' own."""
    name = kind_of(layers[0]).name if len(layers) == 1 else ""
    return INLINE_ACTIVATIONS.get(name) or layers_activation(layers)


def flatten_parameters(params: list[scratch.Parameter]) -> tuple[np.ndarray, np.ndarray]:
    """Move ``params`` into one flat value array and one flat gradient array, numbers kept: each
    Parameter's ``value`` and ``grad`` become views of them, so that one whole-array update steps
    every layer. (Only the yardstick's own copy of the network is laid out so.)"""
    values = np.concatenate([p.value.ravel() for p in params])
    grads = np.concatenate([p.grad.ravel() for p in params])
    offset = 0
    for p in params:
        segment, shape = slice(offset, offset + p.value.size), p.value.shape
        p.value, p.grad = values[segment].reshape(shape), grads[segment].reshape(shape)
        offset += p.value.size
    return values, grads


class NumpyPlainLoop:
    """The scratch yardstick: SGD on ``backend``'s network and ``loader``'s data, every step
    written out inline.

    The backend lends its weights (laid out in one flat array here), the loader its training set,
    and nothing else: none of the product's layer, loss or optimizer code runs here.
    """

    def __init__(self, backend: ScratchBackend, loader: ScratchLoader, lr: float) -> None:
        layers = list(backend.logits_model)
        self.activations = hidden_activations(layers)
        self.linears = [layer for layer in layers if isinstance(layer, scratch.Linear)]
        self.values, self.grads = flatten_parameters(backend.model.parameters())
        self.update = np.zeros_like(self.values)
        self.train_x, self.train_y, self.lr = loader.x, loader.y, lr
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

    def epoch(self, order: np.ndarray, batch_size: int) -> None:
        """One SGD step per batch of rows ``order[start:stop]``; each step's loss lands in
        ``self.losses``."""
        batches = batch_bounds(len(order), batch_size)
        self.losses = np.zeros(len(batches))
        for step, (start, stop) in enumerate(batches):
            outputs, grads, works, loss_buffers = self._work_buffers(stop - start)
            np.take(self.train_x, order[start:stop], axis=0, out=outputs[0], mode="clip")
            np.take(self.train_y, order[start:stop], out=loss_buffers[0], mode="clip")
            self._forward(outputs)
            self.losses[step] = self._loss_and_grad(outputs[-1], loss_buffers)
            self._backward(outputs, grads, works, loss_buffers[2])
            np.multiply(self.grads, self.lr, out=self.update)
            self.values -= self.update

    def _forward(self, outputs: list[np.ndarray]) -> None:
        for i, linear in enumerate(self.linears):
            h = outputs[i + 1]
            np.matmul(outputs[i], linear.W, out=h)
            h += linear.b
            if i < len(self.activations):
                self.activations[i][0](h)

    @staticmethod
    def _loss_and_grad(z: np.ndarray, loss_buffers: list[np.ndarray]) -> float:
        """Softmax cross-entropy of the logits z: loss = mean(log Σ exp(z - max) - (z -
        max)[target]); z becomes dL/dz = (softmax(z) - onehot(target)) / N, in place."""
        y, rows, _, top, total = loss_buffers
        np.max(z, axis=1, keepdims=True, out=top)
        z -= top
        target_logit = z[rows, y]
        np.exp(z, out=z)
        np.sum(z, axis=1, keepdims=True, out=total)
        loss = np.log(total).mean() - target_logit.mean()
        z /= total
        z[rows, y] -= 1
        z *= 1 / len(rows)
        return loss

    def _backward(self, outputs: list[np.ndarray], grads: list[np.ndarray],
                  works: list[np.ndarray], ones: np.ndarray) -> None:
        grad = outputs[-1]
        for i in range(len(self.linears) - 1, -1, -1):
            linear = self.linears[i]
            np.matmul(outputs[i].T, grad, out=linear.dW)
            np.matmul(ones, grad, out=linear.db)
            if i:
                np.matmul(grad, linear.W.T, out=grads[i])
                self.activations[i - 1][1](outputs[i], grads[i], works[i])
                grad = grads[i]


class TorchPlainLoop:
    """The torch yardstick: PyTorch's textbook loop with a default ``torch.optim.SGD`` on
    ``backend``'s model and ``loader``'s data (the backend's own optimizer stays unused)."""

    def __init__(self, backend: TorchBackend, loader: TorchLoader, lr: float) -> None:
        import torch

        self.model, self.device = backend.logits_model, backend.device
        self.train_x, self.train_y = loader.x, loader.y
        self.optimizer = torch.optim.SGD(backend.model.parameters(), lr=lr)

    def epoch(self, order: np.ndarray, batch_size: int) -> None:
        """One SGD step per batch of rows ``order[start:stop]``."""
        import torch
        import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling

        rows = torch.from_numpy(order).to(self.device)
        for start, stop in batch_bounds(len(order), batch_size):
            index = rows[start:stop]
            loss = F.cross_entropy(self.model(self.train_x[index]), self.train_y[index])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()


PLAIN_LOOPS: dict[str, type] = {"scratch": NumpyPlainLoop, "torch": TorchPlainLoop}
