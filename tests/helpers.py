"""Shared test helpers: one way to assert parity rows, with the tolerance in the message."""

from __future__ import annotations

import numpy as np

from compare import tolerance
from compare.parity import Row


def assert_rows_ok(rows: list[Row], dtype: np.dtype | str, context: str = "") -> None:
    """Fail listing every row out of tolerance, naming the tolerance that was applied."""
    bad = [r for r in rows if not r.ok]
    if bad:
        tol = tolerance.for_dtype(np.dtype(dtype))
        listing = "\n".join(
            f"  {r.section} {r.layer} {r.tensor}: max abs {r.max_abs_error:.3e}, "
            f"rel {r.rel_error:.3e}"
            for r in bad
        )
        raise AssertionError(
            f"{context}: {len(bad)} rows outside tolerance ({tol.name}; "
            f"{tolerance.FINITE_DIFFERENCES.name}):\n{listing}"
        )


def random_batch(
    widths: tuple[int, ...], batch_size: int, dtype: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (N, in), upstream gradient (N, classes), targets (N,)), all from one seed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, widths[0])).astype(dtype)
    upstream = rng.standard_normal((batch_size, widths[-1])).astype(dtype)
    target = rng.integers(0, widths[-1], size=batch_size)
    return x, upstream, target
