"""What every layer shares: trainable parameters with their gradients, and forward / backward."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class Parameter:
    """A trainable array and the gradient the last backward pass wrote for it (same shape)."""

    value: np.ndarray
    grad: np.ndarray

    @classmethod
    def of(cls, value: np.ndarray) -> Parameter:
        return cls(value, np.zeros_like(value))


class Module:
    """A layer: ``forward(x) -> y`` and ``backward(dL/dy) -> dL/dx``, both batched on axis 0.

    ``forward`` keeps what ``backward`` needs (the input, or the output), so ``backward`` applies
    to the latest ``forward``. Every call returns a new array: what a layer returned is never
    changed by a later call. ``backward`` writes each parameter's gradient into that parameter's
    ``grad`` array (like PyTorch's ``.grad``, but overwritten rather than accumulated).
    """

    def parameters(self) -> list[Parameter]:
        return []

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
