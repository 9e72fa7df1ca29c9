"""Layer-by-layer parity of the twins: forward outputs and gradients.

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
from compare.harness import tolerance
from compare.harness.arch import Architecture, parse_dtype
from compare.harness.twins import build_twins, scratch_state_dict, torch_state_dict


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


def make_row(section: str, index: int, layer: object, tensor: str, actual: np.ndarray,
             expected: np.ndarray, tol: tolerance.Tolerance) -> Row:
    max_abs, rel = tolerance.errors(actual, expected)
    return Row(section, f"{index} {type(layer).__name__}", tensor, max_abs, rel,
               tol.passes(actual, expected, rel))


def forward_rows(scratch_model: scratch.Sequential, torch_model: nn.Sequential, x: np.ndarray
                 ) -> list[Row]:
    """Compare the output Y of every layer for input x (N, in)."""
    tol = tolerance.for_dtype(x.dtype)
    rows = []
    h_scratch, h_torch = x, torch.from_numpy(x)
    with torch.no_grad():
        for index, (scratch_layer, torch_layer) in enumerate(zip(scratch_model, torch_model,
                                                                 strict=True)):
            h_scratch, h_torch = scratch_layer.forward(h_scratch), torch_layer(h_torch)
            rows.append(make_row("forward", index, scratch_layer, "Y", h_scratch,
                                 h_torch.numpy(), tol))
    return rows


def scratch_input_grads(scratch_model: scratch.Sequential, x: np.ndarray, depth: int, *,
                        upstream: np.ndarray | None, target: np.ndarray | None
                        ) -> list[np.ndarray]:
    """Backpropagate through the first ``depth`` layers; dL/d(input) of each layer, first first.
    The loss is ``Σ upstream ⊙ output`` or, with ``target``, cross-entropy of the output."""
    out = scratch_model[:depth].forward(x)
    if upstream is not None:
        grad = upstream
    else:
        loss = scratch.CrossEntropyLoss()
        loss.forward(out, target)
        grad = loss.backward()
    input_grads = []
    for index in range(depth - 1, -1, -1):
        grad = scratch_model[index].backward(grad)
        input_grads.insert(0, grad)
    return input_grads


def torch_input_grads(torch_model: nn.Sequential, x: np.ndarray, depth: int, *,
                      upstream: np.ndarray | None, target: np.ndarray | None) -> list[np.ndarray]:
    """The same through autograd: ``.grad`` of each layer's input, first first."""
    torch_model.zero_grad()
    h = torch.from_numpy(x).requires_grad_()
    layer_inputs = []
    for layer in torch_model[:depth]:
        layer_inputs.append(h)
        h = layer(h)
        h.retain_grad()
    if upstream is not None:
        h.backward(torch.from_numpy(upstream))
    else:
        F.cross_entropy(h, torch.from_numpy(target)).backward()
    return [h_in.grad.numpy() for h_in in layer_inputs]


def gradient_rows(scratch_model: scratch.Sequential, torch_model: nn.Sequential, x: np.ndarray,
                  *, upstream: np.ndarray | None = None, target: np.ndarray | None = None
                  ) -> list[Row]:
    """Backpropagate through both and compare dW, db and dX of every layer.

    With ``upstream`` (N, classes) the loss is ``Σ upstream ⊙ probabilities`` (a random upstream
    gradient on the Softmax output); with ``target`` (N,) it is cross-entropy from the logits, so
    the Softmax layer is left out, as in training.
    """
    if (upstream is None) == (target is None):
        raise ValueError("give exactly one of upstream or target")
    tol = tolerance.for_dtype(x.dtype)
    depth = len(scratch_model) if upstream is not None else len(scratch_model) - 1
    section = "grad(upstream)" if upstream is not None else "grad(cross-entropy)"
    scratch_dx = scratch_input_grads(scratch_model, x, depth, upstream=upstream, target=target)
    torch_dx = torch_input_grads(torch_model, x, depth, upstream=upstream, target=target)
    scratch_grads = scratch_state_dict(scratch_model, grads=True)
    torch_grads = torch_state_dict(torch_model, grads=True)
    rows = []
    for index in range(depth):
        layer = scratch_model[index]
        for name, tensor in [(f"{index}.weight", "dW"), (f"{index}.bias", "db")]:
            if name in scratch_grads:
                rows.append(make_row(section, index, layer, tensor, scratch_grads[name],
                                     torch_grads[name], tol))
        rows.append(make_row(section, index, layer, "dX", scratch_dx[index], torch_dx[index], tol))
    return rows


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

    @property
    def tolerance_text(self) -> str:
        return tolerance.for_dtype(parse_dtype(self.dtype)).name

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "max_rel_error": self.max_rel_error, "arch": self.arch.spec,
            "activation": self.arch.activation, "dtype": self.dtype,
            "batch_size": self.batch_size, "seed": self.seed, "tolerance": self.tolerance_text,
            "finite_difference_tolerance": tolerance.FINITE_DIFFERENCES.name,
            "rows": [asdict(row) for row in self.rows],
        }

    def table(self) -> str:
        lines = [
            f"parity {self.arch.spec} {self.arch.activation}, {self.dtype}, "
            f"batch {self.batch_size}, seed {self.seed}",
            f"tolerance {self.tolerance_text}; {tolerance.FINITE_DIFFERENCES.name}",
            f"{'section':<32} {'layer':<11} {'tensor':<6} {'max abs err':>12} {'rel err':>10}  ok",
        ]
        lines += [f"{r.section:<32} {r.layer:<11} {r.tensor:<6} {r.max_abs_error:>12.3e} "
                  f"{r.rel_error:>10.3e}  {'yes' if r.ok else 'NO'}" for r in self.rows]
        failed = sum(not r.ok for r in self.rows)
        verdict = ("PASS" if self.ok else
                   f"FAIL ({failed} of {len(self.rows)} rows out of tolerance)")
        lines.append(f"{verdict}: max relative error scratch vs torch {self.max_rel_error:.3e}")
        return "\n".join(lines)


def random_batch(widths: tuple[int, ...], batch_size: int, dtype: str, seed: int | list[int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (N, in), upstream gradient (N, classes), targets (N,)), all from one seed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, widths[0])).astype(dtype)
    upstream = rng.standard_normal((batch_size, widths[-1])).astype(dtype)
    target = rng.integers(0, widths[-1], size=batch_size)
    return x, upstream, target


def run_parity(arch: Architecture, *, dtype: str = "float64", batch_size: int = 32, seed: int = 0
               ) -> ParityReport:
    """Build both twins from ``seed`` (scratch draws, torch copies), then compare one batch:
    forward outputs, gradients for a random upstream gradient and for cross-entropy, and scratch's
    gradients against finite differences on a small float64 network."""
    from compare.harness.finite_differences import finite_difference_rows

    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    scratch_model, torch_model = build_twins(arch, seed=seed, dtype=dtype)
    x, upstream, target = random_batch(arch.widths, batch_size, dtype, [seed, 1])
    rows = forward_rows(scratch_model, torch_model, x)
    rows += gradient_rows(scratch_model, torch_model, x, upstream=upstream)
    rows += gradient_rows(scratch_model, torch_model, x, target=target)
    rows += finite_difference_rows(arch, seed=seed)
    return ParityReport(arch, dtype, batch_size, seed, rows)
