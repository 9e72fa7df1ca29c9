"""Linear layer and activations, forward and backward by hand.

Shapes: a batch ``x`` is (N, in); a layer returns ``y`` (N, out); ``backward`` takes the upstream
gradient dL/dy (N, out) and returns dL/dx (N, in). Every array keeps the dtype it came in with.
"""

from __future__ import annotations

import numbers

import numpy as np

from scratch.init import linear_init
from scratch.module import Module, Parameter


class Linear(Module):
    """A layer of ``out`` neurons, each a weighted sum of the ``in`` inputs plus a bias, computed
    for the whole batch as one matrix product.

    Forward:  ``y = x @ W + b``            x (N, in), W (in, out), b (out,), y (N, out)
    Backward: ``dW = xᵀ · dy``             (in, out)
              ``db = Σ_rows dy``            (out,)
              ``dx = dy · Wᵀ``             (N, in)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rng: np.random.Generator | None = None,
        dtype: np.dtype = np.float32,
    ) -> None:
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"Linear needs positive sizes, got in_features={in_features}, "
                f"out_features={out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        weight, bias = linear_init(in_features, out_features, rng or np.random.default_rng(), dtype)
        self.weight, self.bias = Parameter.of(weight), Parameter.of(bias)
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, in) -> y (N, out)."""
        W, b = self.weight.value, self.bias.value  # noqa: N806 - the math's names
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"{self!r} expects input of shape (N, {self.in_features}), got {x.shape}"
            )
        if x.dtype != W.dtype:
            raise TypeError(f"{self!r} holds {W.dtype} weights but got {x.dtype} input")
        self.x = x
        return x @ W + b

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dy (N, out) -> dx (N, in); writes dW (in, out) and db (out,)."""
        self.backward_parameters(grad_out)
        return grad_out @ self.weight.value.T  # dx = dy·Wᵀ

    def backward_parameters(self, grad_out: np.ndarray) -> None:
        """Writes dW and db only: the first layer of a network needs no dx for its input."""
        if self.x is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        dW, db = self.weight.grad, self.bias.grad  # noqa: N806 - the math's names
        np.matmul(self.x.T, grad_out, out=dW)  # dW = xᵀ·dy
        grad_out.sum(axis=0, out=db)  # db = Σ_rows dy

    @property
    def W(self) -> np.ndarray:  # noqa: N802 - the math's name
        return self.weight.value

    @property
    def b(self) -> np.ndarray:
        return self.bias.value

    @property
    def dW(self) -> np.ndarray:  # noqa: N802 - the math's name
        return self.weight.grad

    @property
    def db(self) -> np.ndarray:
        return self.bias.grad

    def __repr__(self) -> str:
        return (
            f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias=True)"
        )


class ReLU(Module):
    """``y = max(x, 0)``, a gate: the gradient passes where the input was positive and is blocked
    where it was not. Backward: ``dx = dy · [x > 0]``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.passes = x > 0
        return np.maximum(x, 0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.passes


class LeakyReLU(Module):
    """``y = x`` where x > 0, else ``negative_slope · x``: a ReLU whose gate leaks, so a unit that
    is never active still passes some gradient. Backward: ``dx = dy`` where x > 0, else
    ``negative_slope · dy``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
            raise TypeError(f"LeakyReLU: negative_slope must be a real number, got "
                            f"{negative_slope!r}")
        self.negative_slope = float(negative_slope)  # a Python float keeps x's dtype

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.passes = x > 0
        return np.where(self.passes, x, x * self.negative_slope)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return np.where(self.passes, grad_out, grad_out * self.negative_slope)

    def __repr__(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))``; backward ``dx = dy · y · (1 - y)``.

    Computed from ``e = exp(-|x|)``, which is in (0, 1], so no exponent overflows: for x >= 0,
    ``1 / (1 + e)``; for x < 0, ``e / (1 + e)``.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(-np.abs(x))
        self.y = np.where(x >= 0, 1, e) / (1 + e)
        return self.y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (self.y * (1 - self.y))


class Tanh(Module):
    """``y = tanh(x)``; backward ``dx = dy · (1 - y²)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.tanh(x)
        return self.y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (1 - self.y * self.y)


class Softmax(Module):
    """Softmax over axis ``dim`` (the last by default), ``y_i = exp(x_i - max x) / Σ_j exp(x_j -
    max x)``.

    Backward (Jacobian-vector product): ``dx = (dy - Σ_j dy_j y_j) · y``.
    """

    def __init__(self, dim: int = -1) -> None:
        self.dim = dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))
        self.y = e / e.sum(axis=self.dim, keepdims=True)
        return self.y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return (grad_out - (grad_out * self.y).sum(axis=self.dim, keepdims=True)) * self.y

    def __repr__(self) -> str:
        return f"Softmax(dim={self.dim})"


class Identity(Module):
    """``y = x``, no activation at all: a network of Linear layers with nothing between them is
    one Linear layer in disguise (``x·W1·W2 = x·(W1·W2)``)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out
