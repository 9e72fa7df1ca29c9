"""A third opinion on scratch's gradients: central differences in float64, at any width.

For one tensor θ (an input, a parameter) it measures the derivative of a loss L two ways:

- at a random sample of entries: ``(L(θ + h·e_i) - L(θ - h·e_i)) / 2h`` against ``dL/dθ_i``;
- along one random unit direction v, as ``torch.autograd.gradcheck``'s fast mode does:
  ``(L(θ + h·v) - L(θ - h·v)) / 2h`` against ``⟨dL/dθ, v⟩``. Every entry of θ moves, so a wrong
  entry i of dL/dθ, off by δ, moves the projection by δ·v_i: no entry of a wide layer can hide.

Each costs two evaluations of L, so the cost does not grow with the width of θ.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

import scratch

STEP = 1e-6
"""h: small enough that a ReLU kink is rarely within reach, large enough that rounding stays
below the tolerance's floor (see :func:`compare.harness.tolerance.finite_differences`)."""
SAMPLES = 16
"""Entries measured one at a time per tensor (all of them when it has fewer)."""

Loss = Callable[[], float]


@dataclass(frozen=True)
class Opinion:
    """What central differences make of one tensor's gradient, beside the analytic gradient."""

    indices: list[tuple[int, ...]]
    """The sampled entries of θ."""
    analytic: np.ndarray
    """dL/dθ at those entries, (samples,)."""
    numeric: np.ndarray
    """Their central differences, (samples,)."""
    projected: float
    """⟨dL/dθ, v⟩ for the random unit direction v."""
    directional: float
    """(L(θ + h·v) - L(θ - h·v)) / 2h."""


def opinion(loss: Loss, values: np.ndarray, gradient: np.ndarray, rng: np.random.Generator
            ) -> Opinion:
    """Central differences of ``loss`` in ``values`` (θ, any shape; perturbed in place and
    restored bit for bit) against ``gradient`` (dL/dθ, θ's shape)."""
    count = min(SAMPLES, values.size)
    flat = np.sort(rng.choice(values.size, size=count, replace=False))
    indices = [tuple(int(i) for i in np.unravel_index(f, values.shape)) for f in flat]
    direction = rng.standard_normal(values.shape)
    direction /= np.linalg.norm(direction)
    numeric = np.array([directional(loss, values, one_hot(values.shape, index))
                        for index in indices])
    return Opinion(indices, np.array([gradient[index] for index in indices]), numeric,
                   float(np.sum(gradient * direction)), directional(loss, values, direction))


def one_hot(shape: tuple[int, ...], index: tuple[int, ...]) -> np.ndarray:
    unit = np.zeros(shape)
    unit[index] = 1.0
    return unit


def directional(loss: Loss, values: np.ndarray, direction: np.ndarray) -> float:
    """``(L(θ + h·v) - L(θ - h·v)) / 2h`` for θ = ``values`` and v = ``direction``."""
    original = values.copy()
    np.copyto(values, original + STEP * direction)
    above = loss()
    np.copyto(values, original - STEP * direction)
    below = loss()
    np.copyto(values, original)
    return (above - below) / (2 * STEP)


def float64_copy(layers: list[scratch.Module]) -> list[scratch.Module]:
    """Deep copies of ``layers`` whose parameters (values and gradients) and floating-point
    buffers are float64; an attribute that held one of those arrays (a layer's alias of its
    weight) holds the float64 array too."""
    copies = copy.deepcopy(layers)  # keeps the aliases among the copies' arrays
    widened: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id(old): (old, float64)

    def widen(array: np.ndarray) -> np.ndarray:
        if array.dtype != np.float64 and id(array) not in widened:
            widened[id(array)] = array, array.astype(np.float64)
        return widened[id(array)][1] if id(array) in widened else array

    every = [module for layer in copies for module in modules(layer)]
    for module in every:
        for value in vars(module).values():
            if isinstance(value, scratch.Parameter):
                value.value, value.grad = widen(value.value), widen(value.grad)
        for name in module.buffer_names:
            if np.issubdtype(getattr(module, name).dtype, np.floating):
                setattr(module, name, widen(getattr(module, name)))
    for module in every:
        for name, value in vars(module).items():
            if isinstance(value, np.ndarray) and id(value) in widened:
                setattr(module, name, widened[id(value)][1])
    return copies


def modules(module: scratch.Module) -> Iterator[scratch.Module]:
    """``module`` and every module inside it."""
    yield module
    for _, child in module.named_children():
        yield from modules(child)
