"""What "dead" or "saturated" means for a kind of hidden unit: for each unit (a column of the
layer's outputs (N, units) on a set of inputs), whether it has stopped passing gradient back."""

from __future__ import annotations

from collections.abc import Callable

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


def saturated_between(low: float, high: float) -> Inactive:
    """Saturated: within ``SATURATION_MARGIN`` of ``low`` or ``high`` on more than
    ``SATURATED_SHARE`` of the inputs."""
    def saturated(outputs: np.ndarray) -> np.ndarray:
        near = (outputs < low + SATURATION_MARGIN) | (outputs > high - SATURATION_MARGIN)
        return np.mean(near, axis=0) > SATURATED_SHARE

    return saturated
