"""Layer-by-layer parity of the twins: forward outputs and gradients.

Every check runs one batch through both networks (holding the same weights) and reports a row
per layer and tensor: max abs error and relative error max|a-b|/max|b|, scratch against torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

import scratch
from compare.harness import tolerance
from compare.harness.arch import Architecture, parse_dtype
from compare.harness.check_layer import (
    CrossEntropy,
    Pair,
    UpstreamLoss,
    buffer_rows,
    finite_difference_rows,
    layer_pairs,
    twin_rows,
    with_autograd,
)
from compare.harness.report import LayerReport, Row
from compare.memory import Footprint


@with_autograd
def network_rows(scratch_model: scratch.Sequential, torch_model: nn.Sequential, x: np.ndarray,
                 upstream: np.ndarray, target: np.ndarray) -> list[Row]:
    """Every layer's output Y for input x (N, in); then dW, db and dX of every layer for the loss
    ``Σ upstream ⊙ probabilities`` (a random upstream gradient (N, classes) on the Softmax
    output), and for cross-entropy from the logits for ``target`` (N,), the Softmax left out, as
    in training. The torch side holds a copy of the scratch weights."""
    pairs = layer_pairs(scratch_model, torch_model, x.dtype)
    return (twin_rows(pairs, x, UpstreamLoss(upstream), forward=True)
            + twin_rows(pairs[:-1], x, CrossEntropy(target)))


@dataclass(frozen=True)
class ParityReport(LayerReport):
    """The rows of ``compare parity``, and the network and batch they came from."""

    arch: Architecture
    batch_size: int
    seed: int

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "max_rel_error": self.max_rel_error, **self.arch.to_meta(),
            "dtype": self.dtype,
            "batch_size": self.batch_size, "seed": self.seed, "tolerance": self.tolerance_text,
            "finite_difference_tolerance": tolerance.FINITE_DIFFERENCES.name,
            "finite_difference_floors": self.floors,
            "rows": [asdict(row) for row in self.rows],
        }


def random_batch(widths: tuple[int, ...], batch_size: int, dtype: str, seed: int | list[int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (N, in), upstream gradient (N, classes), targets (N,)), all from one seed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, widths[0])).astype(dtype)
    upstream = rng.standard_normal((batch_size, widths[-1])).astype(dtype)
    target = rng.integers(0, widths[-1], size=batch_size)
    return x, upstream, target


def parity_footprint(arch: Architecture, dtype: str, batch_size: int) -> Footprint:
    """What :func:`run_parity` holds: both twins, and the finite differences' float64 copy of
    scratch (counted in networks of ``dtype``)."""
    itemsize = parse_dtype(dtype)().itemsize
    return Footprint(arch.widths, itemsize, networks=2 + 8 // itemsize, arrays_per_parameter=2,
                     batch_size=batch_size)


def evaluation_rows(pairs: list[Pair], x: np.ndarray, loss: UpstreamLoss) -> list[Row]:
    """Every layer's Y and gradients with both twins in evaluation mode (batch norm then uses
    the running estimates the passes before left), in sections ``eval ...``; the twins go back
    to training mode after."""
    for pair in pairs:
        pair.scratch.eval(), pair.torch.eval()
    try:
        return twin_rows(pairs, x, loss, forward=True, prefix="eval ")
    finally:
        for pair in pairs:
            pair.scratch.train(), pair.torch.train()


@with_autograd
def run_parity(arch: Architecture, *, dtype: str = "float64", batch_size: int = 32, seed: int = 0
               ) -> ParityReport:
    """Build both twins from ``seed`` (scratch draws, torch copies), then compare one batch:
    forward outputs, gradients for a random upstream gradient and for cross-entropy, the buffers
    those two training-mode passes left (batch norm's running estimates), the outputs and
    gradients in evaluation mode, and, for both losses, scratch's gradients (the whole network,
    in float64, training mode) against finite differences."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    arch.check_batch_size(batch_size)
    x, upstream, target = random_batch(arch.widths, batch_size, dtype, [seed, 1])
    pairs = layer_pairs(arch.build_scratch(seed=seed, dtype=dtype), arch.build_torch(dtype=dtype),
                        x.dtype)
    checks = [(pairs, UpstreamLoss(upstream)), (pairs[:-1], CrossEntropy(target))]
    rows = [row for index, (layers, loss) in enumerate(checks)
            for row in twin_rows(layers, x, loss, forward=index == 0)]
    rows += buffer_rows(pairs) + evaluation_rows(pairs, x, UpstreamLoss(upstream))
    floors: dict[str, float] = {}
    for layers, loss in checks:
        finite_difference, floors[f"finite-diff {loss.section}"] = finite_difference_rows(
            layers, x, loss, seed)
        rows += finite_difference
    title = f"parity {arch.spec} {arch.activation_label}, {dtype}, batch {batch_size}, seed {seed}"
    return ParityReport(title=title, dtype=dtype, rows=rows, floors=floors, arch=arch,
                        batch_size=batch_size, seed=seed)
