"""What "dead" or "saturated" means for a kind of hidden unit: for each unit (a column of the
layer's outputs (N, units) on a set of inputs), whether it has stopped passing gradient back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SATURATION_MARGIN = 0.01
"""A bounded output within this of its bounds is saturated: its gradient is nearly 0."""
SATURATED_SHARE = 0.99
"""A unit saturated on more than this share of the inputs counts as saturated."""

Inactive = Callable[[np.ndarray], np.ndarray]
"""outputs (N, units) -> (units,) bool: which units are dead or saturated."""


def never_positive(outputs: np.ndarray) -> np.ndarray:
    """Dead: not once above 0 on any of the N inputs (a ReLU then passes no gradient at all)."""
    return ~np.any(outputs > 0, axis=0)


@dataclass(frozen=True)
class Saturation:
    """Saturated, for an activation whose outputs lie between ``low`` and ``high``: an output
    within ``SATURATION_MARGIN`` of either; a unit (called on outputs (N, units)) saturated on
    more than ``SATURATED_SHARE`` of the inputs."""

    low: float
    high: float

    def near_bounds(self, outputs: np.ndarray) -> np.ndarray:
        """outputs (N, units) -> (N, units) bool: which outputs are saturated."""
        return (outputs < self.low + SATURATION_MARGIN) | (outputs > self.high - SATURATION_MARGIN)

    def __call__(self, outputs: np.ndarray) -> np.ndarray:
        return np.mean(self.near_bounds(outputs), axis=0) > SATURATED_SHARE
