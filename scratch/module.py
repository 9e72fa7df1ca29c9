"""The base every layer shares: parameters with their gradients, and reusable work buffers."""

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

    Outputs and input gradients are written into work buffers the layer keeps, one per batch
    shape, so a training step allocates nothing. An array a layer returns therefore stays valid
    until the same layer runs again with the same batch shape: copy it to keep it longer.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...], np.dtype], np.ndarray] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The work buffer ``name`` for this shape, zero-filled when made (never denormal junk)."""
        key = (name, shape, np.dtype(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.zeros(shape, dtype)
        return buffer

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
