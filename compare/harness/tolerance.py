"""How close the twins must be: every limit the harness and the tests apply, and one comparison
helper for every check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

# torch.testing.assert_close defaults for float32.
FLOAT32_RTOL, FLOAT32_ATOL = 1.3e-6, 1e-5
FLOAT64_MAX_REL = 1e-12
FINITE_DIFFERENCE_MAX_REL = 1e-7
FINITE_DIFFERENCE_ROUNDING = 16
"""How many times eps·(|L| + Σ|Y ⊙ dL/dY|)/h a central difference may be off by rounding (see
:func:`finite_differences`)."""
# Weights after many optimizer steps: rounding differences compound, step after step.
OPTIMIZER_LOCKSTEP_FLOAT64_MAX_REL = 1e-10  # 100 steps on random batches (tests)
TRAINING_LOCKSTEP_FLOAT64_MAX_REL = 1e-9  # any number of steps of `train --lockstep`
# No limit for float32 twins trained apart for many steps: rounding sends them on paths that
# part by an amount the CPU's BLAS kernels set (a limit tuned on one CPU fails on another), so
# such runs are compared in float64, to TRAINING_LOCKSTEP_FLOAT64_MAX_REL.


@dataclass(frozen=True)
class Tolerance:
    """Entry i of ``a`` (N-d) passes against ``b`` (same shape) when ``|a_i - b_i| <= max_rel ·
    max(max|b|, scale) + atol`` (with ``max_rel``: one limit for the whole tensor, max|b| over b's
    finite entries), else when ``|a_i - b_i| <= atol + rtol·|b_i|`` (elementwise). A NaN never
    passes; an infinity passes against itself only.

    ``scale`` is S of a gradient whose sum over the batch cancels (see :data:`FLOAT64`); 0
    otherwise."""

    name: str
    max_rel: float | None = None
    rtol: float = 0.0
    atol: float = 0.0
    scale: float = 0.0

    def limit(self, expected: np.ndarray) -> np.ndarray:
        """The largest ``|a_i - b_i|`` each entry may have, ``expected``'s shape."""
        magnitude = np.abs(expected.astype(np.float64))
        if self.max_rel is not None:
            largest = max(finite_max(magnitude), self.scale)
            return np.full(magnitude.shape, self.max_rel * largest + self.atol)
        return self.atol + self.rtol * np.where(np.isfinite(magnitude), magnitude, 0.0)

    def mismatches(self, actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Which entries are out of tolerance: a bool array of ``expected``'s shape."""
        return ~(difference(actual, expected) <= self.limit(expected))

    def passes(self, actual: np.ndarray, expected: np.ndarray, rel: float | None = None) -> bool:
        """Every entry passes (``rel``, the caller's relative error, is not needed)."""
        return not np.any(self.mismatches(actual, expected))


FLOAT64 = Tolerance(
    f"float64: max|a-b|/max|b| <= {FLOAT64_MAX_REL:g}, or, for a gradient whose sum over the "
    "batch cancels (rel err marked *), max|a-b|/S with S = max Σ_n |example n's term|",
    max_rel=FLOAT64_MAX_REL)
"""A gradient is a sum over the batch of one term per example. Where the terms cancel, as they do
for the bias of a Linear before batch norm (batch norm subtracts the batch mean, so that bias
cannot change the loss: its true gradient is 0), both twins give rounding noise, a few eps times
the terms' size, and max|b| is that noise: the relative error max|a-b|/max|b| of two noises is
about 1. Rounding is measured against what was summed: S, the largest over the tensor's entries
of Σ_n |term_n| (computed by torch's autograd, the reference), which never falls below max|b|.
So a row first compares against max|b|, and only a row that fails it is measured against S."""
FLOAT32 = Tolerance(
    f"float32: |a-b| <= {FLOAT32_ATOL:g} + {FLOAT32_RTOL:g}*|b| elementwise "
    "(torch.testing.assert_close defaults)",
    rtol=FLOAT32_RTOL,
    atol=FLOAT32_ATOL,
)
EXACT = Tolerance("exact: a == b", max_rel=0.0)
"""For counts (batch norm's num_batches_tracked)."""
FINITE_DIFFERENCES = Tolerance(
    f"finite differences (float64): max|a-b| <= {FINITE_DIFFERENCE_MAX_REL:g}·max|b| + floor, "
    f"floor = {FINITE_DIFFERENCE_ROUNDING}·eps·(|L| + Σ|Y ⊙ dL/dY|)/h",
    max_rel=FINITE_DIFFERENCE_MAX_REL,
)


def finite_differences(loss_scale: float, step: float) -> Tolerance:
    """:data:`FINITE_DIFFERENCES` for a loss of scale ``|L| + Σ|Y ⊙ dL/dY|`` and step ``h``.

    A central difference (L(θ+h) - L(θ-h)) / 2h is exact only to the rounding of the two losses
    divided by 2h. A sum rounds by at most a few eps times the sum of its terms' sizes, and a loss
    of the output Y adds up terms of size |Y ⊙ dL/dY| (to first order) on the way to |L|: so
    the floor is FINITE_DIFFERENCE_ROUNDING·eps·(|L| + Σ|Y ⊙ dL/dY|)/h. ``compare parity``'s
    central differences needed at most 0.7 times eps·(...)/h (6 architectures, each activation,
    3 seeds, batches of 1 and 32): 16 leaves a margin of 20. Above the floor the relative 1e-7
    applies; below it (tiny gradients, such as a deep sigmoid stack's first layer) a central
    difference measures rounding, not the gradient.
    """
    floor = FINITE_DIFFERENCE_ROUNDING * float(np.finfo(np.float64).eps) * loss_scale / step
    return replace(FINITE_DIFFERENCES, atol=floor)


def for_dtype(dtype: np.dtype) -> Tolerance:
    return FLOAT64 if np.dtype(dtype) == np.float64 else FLOAT32


def finite_max(magnitude: np.ndarray) -> float:
    """The largest finite entry of ``magnitude`` (|b|, float64); 0 when it has none."""
    finite = magnitude[np.isfinite(magnitude)]
    return float(np.max(finite)) if finite.size else 0.0


def difference(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``|a - b|`` entry by entry, in float64: 0 where they are equal (the same infinity too)."""
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    a, b = actual.astype(np.float64), expected.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf: equal, so 0 below
        return np.where(a == b, 0.0, np.abs(a - b))


def errors(actual: np.ndarray, expected: np.ndarray, scale: float = 0.0) -> tuple[float, float]:
    """(max abs error, relative error max|a-b| / max(max|b|, ``scale``), over b's finite
    entries); 0/0 counts as 0, x/0 as inf."""
    gap = difference(actual, expected)
    if gap.size == 0:
        return 0.0, 0.0
    max_abs = float(np.max(gap))
    scale = max(finite_max(np.abs(expected.astype(np.float64))), scale)
    if scale == 0:
        return max_abs, 0.0 if max_abs == 0 else float("inf")
    return max_abs, max_abs / scale


def state_rel_diff(state: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """Largest relative error max|a-b|/max|b| over the arrays of two state dicts (same names)."""
    if state.keys() != reference.keys():
        raise ValueError(f"parameter names differ: {sorted(state)} vs {sorted(reference)}")
    return max(errors(state[name], reference[name])[1] for name in state)
