"""What every layer shares: parameters with their gradients, buffers, train / eval mode, and
forward / backward. Names follow ``torch.nn.Module``."""

from __future__ import annotations

from collections.abc import Iterator
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

    A module's parameters are its :class:`Parameter` attributes, named as the attributes are;
    its buffers (arrays it keeps that are not trained) are the attributes ``buffer_names`` lists;
    its children are its Module attributes. ``training`` is True until ``eval()``.
    """

    training = True
    buffer_names: tuple[str, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_parameters(self, grad_out: np.ndarray) -> None:
        """Write the parameters' gradients only: for a layer whose input needs no gradient (the
        first layer of a network). This runs ``backward`` and drops dL/dx; a layer may skip it."""
        self.backward(grad_out)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((name, value) for name, value in vars(self).items() if isinstance(value, Module))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` of this module, then of its children (``"0.weight"``...)."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for child_name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` of the state kept that is not trained, this module's then its
        children's."""
        for name in self.buffer_names:
            yield prefix + name, getattr(self, name)
        for child_name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{child_name}.")

    def parameters(self) -> list[Parameter]:
        return [parameter for _, parameter in self.named_parameters()]

    def train(self, mode: bool = True) -> Module:
        """Training mode (or, with ``mode=False``, evaluation mode) for this module and its
        children; returns the module."""
        self.training = mode
        for _, child in self.named_children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
