"""A chain of layers, and the multilayer perceptron built from one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import numpy as np

from scratch.layers import ACTIVATIONS, Linear, Module, Softmax
from scratch.module import Parameter


class Sequential(Module):
    """Runs its layers in order; ``backward`` runs them in reverse and returns dL/dx."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, in of the first layer) -> output (N, out of the last layer)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray, *, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/d(output) -> dL/dx, writing every layer's parameter gradients on the way.

        With ``need_input_grad=False`` the first layer, if Linear, skips dL/dx and None is returned.
        """
        grad = grad_out
        for index in range(len(self.layers) - 1, 0, -1):
            grad = self.layers[index].backward(grad)
        first = self.layers[0]
        if isinstance(first, Linear):
            return first.backward(grad, need_input_grad=need_input_grad)
        return first.backward(grad)

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """Names as PyTorch's: ``"0.weight"``, ``"0.bias"``, ``"2.weight"``..."""
        named = []
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Linear):
                named += [(f"{index}.weight", layer.weight), (f"{index}.bias", layer.bias)]
        return named

    def linears(self) -> list[Linear]:
        return [layer for layer in self.layers if isinstance(layer, Linear)]

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
    activation: str,
    *,
    rng: np.random.Generator | None = None,
    dtype: np.dtype = np.float32,
) -> Sequential:
    """``Linear, act, Linear, act, ..., Linear, Softmax`` for widths like (784, 128, 64, 10).

    Layers draw their weights from ``rng`` in order, first layer first, weight before bias.
    """
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got {list(widths)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    rng = rng or np.random.default_rng()
    layers: list[Module] = []
    for index, (fan_in, fan_out) in enumerate(pairwise(widths)):
        layers.append(Linear(fan_in, fan_out, rng=rng, dtype=dtype))
        layers.append(ACTIVATIONS[activation]() if index < len(widths) - 2 else Softmax())
    return Sequential(*layers)
