"""A third opinion on scratch's gradients: central differences (f(θ+h) - f(θ-h)) / 2h in float64.

The network is kept small and shallow (at most two hidden layers, widths capped at 5) because
finite differences measure a gradient only to about eps·|f|/h ≈ 1e-10 absolute: in a deep sigmoid
stack the first layer's gradient is itself near that size, and the comparison would measure
rounding, not the gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import scratch
from compare.harness import tolerance
from compare.harness.arch import Architecture
from compare.harness.parity import Row, make_row

Loss = Callable[[], float]


def small_version(arch: Architecture) -> Architecture:
    """The same activation with at most two hidden layers and every width capped at 5."""
    hidden = arch.widths[1:-1][:2]
    return Architecture(tuple(min(w, 5) for w in (arch.widths[0], *hidden, arch.widths[-1])),
                        arch.activation)


def central_differences(loss: Loss, values: np.ndarray, step: float) -> np.ndarray:
    """d loss / d values, one element at a time; ``values`` is perturbed in place and restored."""
    numeric = np.zeros_like(values)
    for idx in np.ndindex(values.shape):
        original = values[idx]
        values[idx] = original + step
        above = loss()
        values[idx] = original - step
        below = loss()
        values[idx] = original
        numeric[idx] = (above - below) / (2 * step)
    return numeric


def _losses(model: scratch.Sequential, x: np.ndarray, upstream: np.ndarray, target: np.ndarray
            ) -> dict[str, tuple[Loss, Callable[[], np.ndarray]]]:
    """Per section: (the loss of the current weights, its gradient dL/d(output) after a call)."""
    cross_entropy = scratch.CrossEntropyLoss()
    return {
        "grad(upstream)": (lambda: float(np.sum(upstream * model.forward(x))), lambda: upstream),
        "grad(cross-entropy)": (lambda: cross_entropy.forward(model[:-1].forward(x), target),
                                cross_entropy.backward),
    }


def finite_difference_rows(arch: Architecture, *, seed: int, batch_size: int = 3,
                           step: float = 1e-5) -> list[Row]:
    """Scratch's dW, db and dX against central differences, on :func:`small_version` of ``arch``,
    for a random upstream gradient and for cross-entropy."""
    model = small_version(arch).build_scratch(seed=seed, dtype="float64")
    rng = np.random.default_rng([seed, 3])
    x = rng.standard_normal((batch_size, model[0].in_features))
    upstream = rng.standard_normal((batch_size, model[-2].out_features))
    target = rng.integers(0, upstream.shape[1], size=batch_size)
    rows = []
    for name, (loss, output_grad) in _losses(model, x, upstream, target).items():
        loss()
        depth = len(model) if name == "grad(upstream)" else len(model) - 1
        dx = model[:depth].backward(output_grad())
        checked = [(index, layer, tensor, values, grad)
                   for index, layer in enumerate(model) if isinstance(layer, scratch.Linear)
                   for tensor, values, grad in [("dW", layer.W, layer.dW),
                                                ("db", layer.b, layer.db)]]
        checked.insert(2, (0, model[0], "dX", x, dx))  # after layer 0's dW and db
        for index, layer, tensor, values, analytic in checked:
            numeric = central_differences(loss, values, step)
            rows.append(make_row(f"finite-diff {name}", index, layer, tensor, analytic, numeric,
                                 tolerance.FINITE_DIFFERENCES))
    return rows
