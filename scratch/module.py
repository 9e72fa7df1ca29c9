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


def flatten_parameters(params: list[Parameter]) -> tuple[np.ndarray, np.ndarray]:
    """One contiguous 1-D array of all the values of ``params``, in order, and one of their grads.

    Each Parameter's ``value`` and ``grad`` become views into these two arrays, with their numbers
    kept, so a single whole-array operation updates every parameter. Parameters already laid out
    so (by an earlier call with the same list) keep their arrays and share them.
    """
    if len({id(p) for p in params}) != len(params):
        raise ValueError("a parameter appears more than once in the list")
    dtypes = {p.value.dtype for p in params}
    if len(dtypes) != 1:
        raise ValueError(f"parameters must share one dtype, got {sorted(map(str, dtypes))}")
    sizes = [p.value.size for p in params]
    values, grads = params[0].value.base, params[0].grad.base
    if all(
        isinstance(flat, np.ndarray) and flat.ndim == 1 and flat.size == sum(sizes)
        for flat in (values, grads)
    ) and all(p.value.base is values and p.grad.base is grads for p in params):
        return values, grads
    values, grads = np.empty(sum(sizes), *dtypes), np.empty(sum(sizes), *dtypes)
    offset = 0
    for p, size in zip(params, sizes):
        segment = slice(offset, offset + size)
        values[segment], grads[segment] = p.value.ravel(), p.grad.ravel()
        shape = p.value.shape
        p.value, p.grad = values[segment].reshape(shape), grads[segment].reshape(shape)
        offset += size
    return values, grads


class Module:
    """A layer: ``forward(x) -> y`` and ``backward(dL/dy) -> dL/dx``, both batched on axis 0.

    Outputs and input gradients are written into work buffers the layer keeps, one per batch
    shape, instead of new arrays every step. An array a layer returns therefore stays valid until
    the same layer runs again with the same batch shape: copy it to keep it longer.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...], np.dtype], np.ndarray] = {}

    def _buffer(
        self, name: str, shape: tuple[int, ...], dtype: np.dtype, fill: float = 0.0
    ) -> np.ndarray:
        """The work buffer ``name`` for this shape, filled with ``fill`` when made (never with
        uninitialized memory, whose denormal junk can slow a matrix product many times over)."""
        key = (name, shape, np.dtype(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.full(shape, fill, dtype)
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
