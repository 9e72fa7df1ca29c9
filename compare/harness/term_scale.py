"""S, the size of what a gradient added up: the scale a gradient whose sum over the batch cancels
is compared against (see :data:`compare.harness.tolerance.FLOAT64`).

A layer's gradient (of a parameter, or of its input) for the upstream gradient ``g`` = dL/dY is
linear in ``g``, so it is the sum of one term per row n of Y (per example): the gradient for
``g`` with every row but n set to 0. ``S = max over entries of Σ_n |term_n|``. Torch's autograd
computes the terms, all rows of a chunk in one batched backward pass (``is_grads_batched``).
"""

from __future__ import annotations

import torch

CHUNK_ENTRIES = 1 << 22
"""How many entries the terms of one batched backward pass may hold (32 MiB in float64)."""


def summed_terms(output: torch.Tensor, upstream: torch.Tensor, wrt: torch.Tensor) -> float:
    """S of the gradient of ``Σ upstream ⊙ output`` with respect to ``wrt``, through the graph
    (retained) from ``wrt`` to ``output`` (N, ...); ``upstream`` has the output's shape."""
    if output.dim() == 0:
        output, upstream = output.reshape(1), upstream.reshape(1)
    rows = output.shape[0]
    chunk = max(1, CHUNK_ENTRIES // (wrt.numel() + output.numel()))
    total = torch.zeros_like(wrt)
    for start in range(0, rows, chunk):
        count = min(rows, start + chunk) - start
        one_row_each = upstream.new_zeros((count, *upstream.shape))
        picked = torch.arange(count)
        one_row_each[picked, start + picked] = upstream[start : start + count]
        (terms,) = torch.autograd.grad(output, wrt, one_row_each, retain_graph=True,
                                       is_grads_batched=True, allow_unused=True)
        if terms is not None:
            total += terms.abs().sum(dim=0)
    return float(total.max()) if total.numel() else 0.0
