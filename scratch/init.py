"""Weight initialization that draws what ``torch.nn.Linear`` draws."""

from __future__ import annotations

import numpy as np


def linear_init(
    in_features: int, out_features: int, rng: np.random.Generator, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``W`` of shape (in, out) and ``b`` of shape (out,) from U(-1/sqrt(in), 1/sqrt(in)).

    ``nn.Linear`` calls ``kaiming_uniform_(weight, a=sqrt(5))``: its bound is
    gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)), which is 1 / sqrt(fan_in); the bias uses
    the same bound. The draw is made in float64 and rounded once to ``dtype``, so a float32 and a
    float64 network built from the same seed hold the same weights up to that rounding.
    """
    bound = 1.0 / np.sqrt(in_features)
    weight = rng.uniform(-bound, bound, size=(in_features, out_features)).astype(dtype)
    bias = rng.uniform(-bound, bound, size=(out_features,)).astype(dtype)
    return weight, bias
