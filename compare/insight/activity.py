"""What the hidden units do on a set of inputs: how many are dead (ReLU) or saturated (sigmoid,
tanh), and the distribution of their outputs."""

from __future__ import annotations

import numpy as np

SATURATION_MARGIN = 0.01
"""A sigmoid or tanh output within this of its bounds is saturated: its gradient is nearly 0."""
SATURATED_SHARE = 0.99
"""A unit saturated on more than this share of the inputs counts as saturated."""
BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
DEAD_OR_SATURATED = ("relu", *BOUNDS)
"""The activations whose units can die or saturate (not "none", which passes everything)."""


def dead_fraction(outputs: np.ndarray, activation: str) -> float:
    """The share of units (columns of ``outputs``, (N, units)) that are dead: for ReLU, never
    active (output > 0) on any of the N inputs; for sigmoid and tanh, saturated (within
    ``SATURATION_MARGIN`` of a bound) on more than ``SATURATED_SHARE`` of them."""
    if activation == "relu":
        return float(np.mean(~np.any(outputs > 0, axis=0)))
    low, high = BOUNDS[activation]
    saturated = (outputs < low + SATURATION_MARGIN) | (outputs > high - SATURATION_MARGIN)
    return float(np.mean(np.mean(saturated, axis=0) > SATURATED_SHARE))
