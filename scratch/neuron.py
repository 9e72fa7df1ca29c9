"""One neuron at a time: the tutorial's object model, written out in plain Python loops.

A :class:`Neuron` computes ``y = Σ_i w_i·x_i + b`` for one input vector; a :class:`NeuronLayer`
is a list of neurons, asked one after the other, for one example after the other. This is slow on
purpose (a Python loop per multiply-add, thousands of times slower than :class:`Linear`): it is
the definition that ``Linear`` computes as one matrix product, and the tests prove that the two
agree to 1e-12 in float64, forward and backward.
"""

from __future__ import annotations

import numpy as np

from scratch.layers import Linear


class Neuron:
    """``y = Σ_i w_i·x_i + b`` with weights ``w`` (in,) and a bias ``b``.

    Backward, for the upstream gradient ``dy = dL/dy`` (a number): ``dL/dw_i = dy·x_i``,
    ``dL/db = dy``, ``dL/dx_i = dy·w_i``.
    """

    def __init__(self, w: np.ndarray, b: float) -> None:
        self.w, self.b = [float(wi) for wi in w], float(b)

    def forward(self, x: list[float]) -> float:
        y = self.b
        for wi, xi in zip(self.w, x, strict=True):
            y += wi * xi
        return y

    def backward(self, x: list[float], dy: float) -> tuple[list[float], float, list[float]]:
        """(dL/dw, dL/db, dL/dx) for the input ``x``, given dL/dy."""
        return [dy * xi for xi in x], dy, [dy * wi for wi in self.w]


class NeuronLayer:
    """A layer as a list of neurons, neuron j holding column j of a Linear's ``W``.

    Over a batch, each neuron's gradients are the sums of its gradients for each example, and
    the gradient for an input is the sum of what every neuron sends back to it.
    """

    def __init__(self, neurons: list[Neuron]) -> None:
        self.neurons = neurons
        self.x: list[list[float]] = []

    @classmethod
    def like(cls, linear: Linear) -> NeuronLayer:
        """The neurons of ``linear``: neuron j has weights ``W[:, j]`` and bias ``b[j]``."""
        return cls([Neuron(linear.W[:, j], linear.b[j]) for j in range(linear.out_features)])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, in) -> y (N, out), one neuron and one example at a time."""
        self.x = [[float(v) for v in row] for row in x]
        return np.array([[neuron.forward(row) for neuron in self.neurons] for row in self.x])

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dy (N, out) -> (dW (in, out), db (out,), dx (N, in)), summed over the batch."""
        if not self.x:
            raise RuntimeError("NeuronLayer: backward called before forward")
        inputs = len(self.x[0])
        dw = [[0.0] * len(self.neurons) for _ in range(inputs)]
        db = [0.0] * len(self.neurons)
        dx = [[0.0] * inputs for _ in self.x]
        for n, row in enumerate(self.x):
            for j, neuron in enumerate(self.neurons):
                dw_j, db_j, dx_j = neuron.backward(row, float(dy[n, j]))
                for i in range(inputs):
                    dw[i][j] += dw_j[i]
                    dx[n][i] += dx_j[i]
                db[j] += db_j
        return np.array(dw), np.array(db), np.array(dx)
