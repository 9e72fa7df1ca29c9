"""What a check reports: a row per compared tensor (scratch against torch, or analytic against
numeric), and the table of rows ``compare parity`` and :func:`compare.check_layer` print.

A row: max abs error max|a-b|, relative error max|a-b|/max|b|, the worst entry's index, and how
many entries are out of tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.errors import UserError
from compare.harness import tolerance


class LayerCheckError(UserError, ValueError):
    """The pair cannot be compared: nothing to compare, or parameters that do not correspond;
    the message names the layer and the parameter."""


@dataclass(frozen=True)
class Row:
    """One compared tensor: ``section`` is forward, grad(upstream), grad(cross-entropy) or
    finite-diff ...; ``layer`` like ``2 Linear``; ``tensor`` Y, dW, db, dX (``dW·v``: a
    projection); ``worst`` the index of its largest error; ``mismatches`` of ``entries`` out of
    tolerance; ``term_scale`` S, when the relative error is measured against it (a gradient whose
    sum over the batch cancels: :data:`compare.harness.tolerance.FLOAT64`), else None."""

    section: str
    layer: str
    tensor: str
    max_abs_error: float
    rel_error: float
    ok: bool
    worst: tuple[int, ...]
    mismatches: int
    entries: int
    term_scale: float | None = None


def make_row(section: str, layer: str, tensor: str, actual: np.ndarray, expected: np.ndarray,
             tol: tolerance.Tolerance) -> Row:
    """``actual`` against ``expected`` (the same shape, any); the worst entry is the one furthest
    past its limit (a NaN first)."""
    if actual.shape != expected.shape:
        raise LayerCheckError(f"{layer} {tensor}: scratch's is {actual.shape}, torch's is "
                              f"{expected.shape}")
    max_abs, rel = tolerance.errors(actual, expected, tol.scale)
    bad = tol.mismatches(actual, expected)
    gap = tolerance.difference(actual, expected)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0: no error; x/0: past its limit
        excess = np.where(np.isnan(gap), np.inf, np.nan_to_num(gap / tol.limit(expected),
                                                               nan=0.0, posinf=np.inf))
    worst = np.unravel_index(np.argmax(excess), gap.shape) if gap.size else ()
    return Row(section, layer, tensor, max_abs, rel, not bad.any(),
               tuple(int(i) for i in worst), int(bad.sum()), gap.size, tol.scale or None)


@dataclass(frozen=True)
class LayerReport:
    """The rows of a check and their verdict; ``str(report)`` is the table."""

    title: str
    dtype: str
    rows: list[Row]
    floors: dict[str, float]
    """Per finite-difference section, the absolute floor of its tolerance."""

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def max_rel_error(self) -> float:
        """Largest relative error of scratch against torch (finite differences excluded)."""
        return max(r.rel_error for r in self.rows if not r.section.startswith("finite-diff"))

    @property
    def tolerance_text(self) -> str:
        return tolerance.for_dtype(np.dtype(self.dtype)).name

    def table(self) -> str:
        floors = ", ".join(f"{section.removeprefix('finite-diff ')} {floor:.1e}"
                           for section, floor in self.floors.items())
        cells = [(r.section, r.layer, r.tensor, f"{r.max_abs_error:.3e}",
                  f"{r.rel_error:.3e}{'*' if r.term_scale is not None else ' '}",
                  ",".join(map(str, r.worst)) or "-", f"{r.mismatches}/{r.entries}",
                  "yes" if r.ok else "NO") for r in self.rows]
        header = ("section", "layer", "tensor", "max abs err", "rel err", "worst", "bad", "ok")
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
        counts = (f"; buffers that count (num_batches_tracked): {tolerance.EXACT.name}"
                  if any(r.section == "buffers" for r in self.rows) else "")
        lines = [self.title,
                 f"tolerance {self.tolerance_text}{counts}; {tolerance.FINITE_DIFFERENCES.name}",
                 f"finite-difference floors: {floors}"]
        lines += ["  ".join(cell.ljust(width) if i < 3 else cell.rjust(width)
                            for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
                  for row in [header, *cells]]
        scaled = [r for r in self.rows if r.term_scale is not None]
        if scaled:
            lines.append(f"* {len(scaled)} gradients whose sum over the batch cancels: rel err "
                         "is max|a-b|/S, S = max Σ_n |example n's term| (from "
                         f"{min(r.term_scale for r in scaled):.1e} to "
                         f"{max(r.term_scale for r in scaled):.1e}), not max|b|")
        failed = sum(not r.ok for r in self.rows)
        verdict = ("PASS" if self.ok else
                   f"FAIL ({failed} of {len(self.rows)} rows out of tolerance)")
        lines.append(f"{verdict}: max relative error scratch vs torch {self.max_rel_error:.3e}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
