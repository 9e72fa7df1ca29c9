"""How close the twins must be: every limit the harness and the tests apply, and one comparison
helper for every check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# torch.testing.assert_close defaults for float32.
FLOAT32_RTOL, FLOAT32_ATOL = 1.3e-6, 1e-5
FLOAT64_MAX_REL = 1e-12
FINITE_DIFFERENCE_MAX_REL = 1e-7
# Weights after many optimizer steps: rounding differences compound, step after step.
OPTIMIZER_LOCKSTEP_FLOAT64_MAX_REL = 1e-10  # 100 steps on random batches (tests)
TRAINING_LOCKSTEP_FLOAT64_MAX_REL = 1e-9  # any number of steps of `train --lockstep`
# No limit for float32 twins trained apart for many steps: rounding sends them on paths that
# part by an amount the CPU's BLAS kernels set (a limit tuned on one CPU fails on another), so
# such runs are compared in float64, to TRAINING_LOCKSTEP_FLOAT64_MAX_REL.


@dataclass(frozen=True)
class Tolerance:
    """Pass when ``max|a-b| / max|b| <= max_rel``, or elementwise ``|a-b| <= atol + rtol·|b|``."""

    name: str
    max_rel: float | None = None
    rtol: float = 0.0
    atol: float = 0.0

    def passes(self, actual: np.ndarray, expected: np.ndarray, rel: float) -> bool:
        if self.max_rel is not None:
            return rel <= self.max_rel
        return bool(np.all(np.abs(actual - expected) <= self.atol + self.rtol * np.abs(expected)))


FLOAT64 = Tolerance(f"float64: max|a-b|/max|b| <= {FLOAT64_MAX_REL:g}", max_rel=FLOAT64_MAX_REL)
FLOAT32 = Tolerance(
    f"float32: |a-b| <= {FLOAT32_ATOL:g} + {FLOAT32_RTOL:g}*|b| elementwise "
    "(torch.testing.assert_close defaults)",
    rtol=FLOAT32_RTOL,
    atol=FLOAT32_ATOL,
)
FINITE_DIFFERENCES = Tolerance(
    f"finite differences (float64): max|a-b|/max|b| <= {FINITE_DIFFERENCE_MAX_REL:g}",
    max_rel=FINITE_DIFFERENCE_MAX_REL,
)


def for_dtype(dtype: np.dtype) -> Tolerance:
    return FLOAT64 if np.dtype(dtype) == np.float64 else FLOAT32


def errors(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max abs error, relative error max|a-b| / max|b|); 0/0 counts as 0, x/0 as inf."""
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    if actual.size == 0:
        return 0.0, 0.0
    max_abs = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
    scale = float(np.max(np.abs(expected)))
    if scale == 0:
        return max_abs, 0.0 if max_abs == 0 else float("inf")
    return max_abs, max_abs / scale


def state_rel_diff(state: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """Largest relative error max|a-b|/max|b| over the arrays of two state dicts (same names)."""
    if state.keys() != reference.keys():
        raise ValueError(f"parameter names differ: {sorted(state)} vs {sorted(reference)}")
    return max(errors(state[name], reference[name])[1] for name in state)
