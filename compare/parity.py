"""Layer-by-layer parity of the twins: forward outputs, gradients, and finite differences.

Every check runs one batch through both networks (holding the same weights) and reports a row
per layer and tensor: max abs error and relative error max|a-b|/max|b|, scratch against torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling
from torch import nn

import scratch
from compare import tolerance
from compare.arch import Architecture, parse_dtype
from compare.weights import scratch_to_torch


@dataclass(frozen=True)
class Row:
    """One compared tensor: ``section`` is forward, grad(upstream), grad(cross-entropy) or
    finite-diff; ``layer`` like ``2 Linear``; ``tensor`` Y, dW, db or dX."""

    section: str
    layer: str
    tensor: str
    max_abs_error: float
    rel_error: float
    ok: bool


def _row(
    section: str,
    index: int,
    layer: object,
    tensor: str,
    actual: np.ndarray,
    expected: np.ndarray,
    tol: tolerance.Tolerance,
) -> Row:
    max_abs, rel = tolerance.errors(actual, expected)
    return Row(
        section,
        f"{index} {type(layer).__name__}",
        tensor,
        max_abs,
        rel,
        tol.passes(actual, expected, rel),
    )


def forward_rows(model: scratch.Sequential, reference: nn.Sequential, x: np.ndarray) -> list[Row]:
    """Compare the output Y of every layer for input x (N, in)."""
    tol = tolerance.for_dtype(x.dtype)
    rows = []
    h, h_ref = x, torch.from_numpy(x)
    with torch.no_grad():
        for index, (layer, layer_ref) in enumerate(zip(model, reference)):
            h, h_ref = layer.forward(h), layer_ref(h_ref)
            rows.append(_row("forward", index, layer, "Y", h, h_ref.numpy(), tol))
    return rows


def gradient_rows(
    model: scratch.Sequential,
    reference: nn.Sequential,
    x: np.ndarray,
    *,
    upstream: np.ndarray | None = None,
    target: np.ndarray | None = None,
) -> list[Row]:
    """Backpropagate through both and compare dW, db and dX of every layer.

    With ``upstream`` (N, classes) the loss is ``Σ upstream ⊙ probabilities`` (a random upstream
    gradient on the Softmax output); with ``target`` (N,) it is cross-entropy from the logits, so
    the Softmax layer is left out, as in training.
    """
    if (upstream is None) == (target is None):
        raise ValueError("give exactly one of upstream or target")
    tol = tolerance.for_dtype(x.dtype)
    depth = len(model) if upstream is not None else len(model) - 1
    section = "grad(upstream)" if upstream is not None else "grad(cross-entropy)"

    out = model[:depth].forward(x)
    if upstream is not None:
        grad = upstream
    else:
        loss = scratch.CrossEntropyLoss()
        loss.forward(out, target)
        grad = loss.backward()
    input_grads = {}
    for index in range(depth - 1, -1, -1):
        grad = model[index].backward(grad)
        input_grads[index] = grad.copy()

    reference.zero_grad()
    h = torch.from_numpy(x).requires_grad_()
    layer_inputs = []
    for layer in reference[:depth]:
        layer_inputs.append(h)
        h = layer(h)
        h.retain_grad()
    if upstream is not None:
        h.backward(torch.from_numpy(upstream))
    else:
        F.cross_entropy(h, torch.from_numpy(target)).backward()

    rows = []
    for index in range(depth):
        layer, layer_ref = model[index], reference[index]
        if isinstance(layer, scratch.Linear):
            rows.append(
                _row(section, index, layer, "dW", layer.dW, layer_ref.weight.grad.numpy().T, tol)
            )
            rows.append(
                _row(section, index, layer, "db", layer.db, layer_ref.bias.grad.numpy(), tol)
            )
        rows.append(
            _row(
                section,
                index,
                layer,
                "dX",
                input_grads[index],
                layer_inputs[index].grad.numpy(),
                tol,
            )
        )
    return rows


def finite_difference_rows(
    arch: Architecture, *, seed: int, batch_size: int = 3, step: float = 1e-5
) -> list[Row]:
    """A third opinion: central differences (f(θ+h) - f(θ-h)) / 2h in float64 on a small network
    with the same activation (at most two hidden layers, widths capped at 5), against scratch's
    dW, db and dX.

    The network is kept shallow because finite differences measure a gradient only to about
    eps·|f|/h ≈ 1e-10 absolute: in a deep sigmoid stack the first layer's gradient is itself near
    that size, and the comparison would measure rounding, not the gradient.
    """
    hidden = arch.widths[1:-1][:2]
    small = Architecture(
        tuple(min(w, 5) for w in (arch.widths[0], *hidden, arch.widths[-1])), arch.activation
    )
    model = small.build_scratch(seed=seed, dtype="float64")
    rng = np.random.default_rng([seed, 3])
    x = rng.standard_normal((batch_size, small.widths[0]))
    upstream = rng.standard_normal((batch_size, small.widths[-1]))
    target = rng.integers(0, small.widths[-1], size=batch_size)
    cross_entropy = scratch.CrossEntropyLoss()
    losses = {
        "grad(upstream)": (len(model), lambda: float(np.sum(upstream * model.forward(x)))),
        "grad(cross-entropy)": (
            len(model) - 1,
            lambda: cross_entropy.forward(model[:-1].forward(x), target),
        ),
    }
    rows = []
    for name, (depth, loss) in losses.items():
        loss()
        grad = upstream if depth == len(model) else cross_entropy.backward()
        for index in range(depth - 1, -1, -1):
            grad = model[index].backward(grad)
        checked = [
            (index, layer, "dW", layer.W, layer.dW.copy())
            for index, layer in enumerate(model)
            if isinstance(layer, scratch.Linear)
        ]
        checked += [
            (index, layer, "db", layer.b, layer.db.copy())
            for index, layer in enumerate(model)
            if isinstance(layer, scratch.Linear)
        ]
        checked.append((0, model[0], "dX", x, grad.copy()))
        for index, layer, tensor, values, analytic in sorted(checked, key=lambda c: c[0]):
            numeric = _central_differences(loss, values, step)
            rows.append(
                _row(
                    f"finite-diff {name}",
                    index,
                    layer,
                    tensor,
                    analytic,
                    numeric,
                    tolerance.FINITE_DIFFERENCES,
                )
            )
    return rows


def _central_differences(loss: object, values: np.ndarray, step: float) -> np.ndarray:
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


@dataclass(frozen=True)
class ParityReport:
    arch: Architecture
    dtype: str
    batch_size: int
    seed: int
    rows: list[Row]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def max_rel_error(self) -> float:
        """Largest relative error of scratch against torch (finite differences excluded)."""
        return max(r.rel_error for r in self.rows if not r.section.startswith("finite-diff"))

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "max_rel_error": self.max_rel_error,
            "arch": self.arch.spec,
            "activation": self.arch.activation,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "tolerance": tolerance.for_dtype(parse_dtype(self.dtype)).name,
            "finite_difference_tolerance": tolerance.FINITE_DIFFERENCES.name,
            "rows": [asdict(row) for row in self.rows],
        }

    def table(self) -> str:
        lines = [
            f"parity {self.arch.spec} {self.arch.activation}, {self.dtype}, "
            f"batch {self.batch_size}, seed {self.seed}",
            f"tolerance {tolerance.for_dtype(parse_dtype(self.dtype)).name}; "
            f"{tolerance.FINITE_DIFFERENCES.name}",
            f"{'section':<32} {'layer':<11} {'tensor':<6} {'max abs err':>12} {'rel err':>10}  ok",
        ]
        lines += [
            f"{r.section:<32} {r.layer:<11} {r.tensor:<6} {r.max_abs_error:>12.3e} "
            f"{r.rel_error:>10.3e}  {'yes' if r.ok else 'NO'}"
            for r in self.rows
        ]
        failed = sum(not r.ok for r in self.rows)
        verdict = (
            "PASS" if self.ok else f"FAIL ({failed} of {len(self.rows)} rows out of tolerance)"
        )
        lines.append(f"{verdict}: max relative error scratch vs torch {self.max_rel_error:.3e}")
        return "\n".join(lines)


def run_parity(
    arch: Architecture, *, dtype: str = "float64", batch_size: int = 32, seed: int = 0
) -> ParityReport:
    """Build both twins from ``seed`` (scratch draws, torch copies), then compare one batch:
    forward outputs, gradients for a random upstream gradient and for cross-entropy, and scratch's
    gradients against finite differences on a small float64 network."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    np_dtype = parse_dtype(dtype)
    model = arch.build_scratch(seed=seed, dtype=dtype)
    reference = arch.build_torch(dtype=dtype)
    scratch_to_torch(model, reference)
    rng = np.random.default_rng([seed, 1])
    x = rng.standard_normal((batch_size, arch.widths[0])).astype(np_dtype)
    upstream = rng.standard_normal((batch_size, arch.widths[-1])).astype(np_dtype)
    target = rng.integers(0, arch.widths[-1], size=batch_size)
    rows = forward_rows(model, reference, x)
    rows += gradient_rows(model, reference, x, upstream=upstream)
    rows += gradient_rows(model, reference, x, target=target)
    rows += finite_difference_rows(arch, seed=seed)
    return ParityReport(arch, dtype, batch_size, seed, rows)
