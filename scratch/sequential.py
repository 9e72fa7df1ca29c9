"""A chain of layers, and the multilayer perceptron built from one."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise

import numpy as np

from scratch.dropout import Dropout
from scratch.layers import Linear, ReLU, Softmax
from scratch.module import Module


class Sequential(Module):
    """Runs its layers in order; ``backward`` runs them in reverse and returns dL/dx."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, in of the first layer) -> output (N, out of the last layer)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dL/d(output) -> dL/dx, writing every layer's parameter gradients on the way."""
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def backward_parameters(self, grad_out: np.ndarray) -> None:
        """The same, but the first layer skips dL/dx: the input batch needs no gradient (and an
        empty Sequential has none to write)."""
        for layer in reversed(self.layers[1:]):
            grad_out = layer.backward(grad_out)
        if self.layers:
            self.layers[0].backward_parameters(grad_out)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The layers, named by position as PyTorch names them: ``"0"``, ``"1"``..."""
        return ((str(index), layer) for index, layer in enumerate(self.layers))

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        rows = "".join(f"  ({i}): {layer!r}\n" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{rows})"


def mlp(
    widths: Sequence[int],
    activation: Callable[[], Module] = ReLU,
    *,
    norm: Callable[[int], Module] | None = None,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
    dtype: np.dtype = np.float32,
) -> Sequential:
    """``Linear, act, Linear, act, ..., Linear, Softmax`` for widths like (784, 128, 64, 10);
    ``activation()`` makes each hidden activation layer (a class, such as ``Tanh``). With
    ``norm`` (a class, such as ``BatchNorm1d``, called with the width) and ``dropout`` > 0, each
    hidden layer is ``Linear, norm, act, Dropout(dropout)``.

    Layers draw their weights from ``rng`` in order, first layer first, weight before bias; each
    Dropout draws its masks from a generator of its own spawned from ``rng``.
    """
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got {list(widths)}")
    rng = rng or np.random.default_rng()
    layers: list[Module] = []
    for fan_in, fan_out in pairwise(widths[:-1]):
        layers.append(Linear(fan_in, fan_out, rng=rng, dtype=dtype))
        layers += [norm(fan_out)] if norm else []
        layers.append(activation())
        layers += [Dropout(dropout, rng=rng.spawn(1)[0])] if dropout else []
    layers.append(Linear(widths[-2], widths[-1], rng=rng, dtype=dtype))
    return Sequential(*layers, Softmax(dim=1))
