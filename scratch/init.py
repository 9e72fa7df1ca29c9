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


def zeros_(weight: np.ndarray, rng: np.random.Generator, gain: float, std: float) -> None:
    """Every weight 0: every neuron of a layer computes the same thing, and stays the same."""
    weight[...] = 0


def normal_(weight: np.ndarray, rng: np.random.Generator, gain: float, std: float) -> None:
    """N(0, std²) for every weight, whatever the layer's size."""
    weight[...] = rng.normal(0.0, std, size=weight.shape)


def xavier_uniform_(weight: np.ndarray, rng: np.random.Generator, gain: float, std: float
                    ) -> None:
    """Glorot uniform: U(-a, a), a = gain · sqrt(6 / (fan_in + fan_out)), for weight (in, out):
    the variance of activations and of gradients both kept about level across layers."""
    fan_in, fan_out = weight.shape
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    weight[...] = rng.uniform(-bound, bound, size=weight.shape)


def kaiming_normal_(weight: np.ndarray, rng: np.random.Generator, gain: float, std: float
                    ) -> None:
    """He normal: N(0, (gain / sqrt(fan_in))²) for weight (in, out): with ReLU's gain sqrt(2),
    each layer's outputs keep the variance of its inputs although ReLU zeroes half of them."""
    fan_in = weight.shape[0]
    weight[...] = rng.normal(0.0, gain / np.sqrt(fan_in), size=weight.shape)


SCHEMES = {"zeros": zeros_, "normal": normal_, "xavier": xavier_uniform_,
           "kaiming": kaiming_normal_}
"""The initializations a network can be redrawn with, besides ``nn.Linear``'s own (``torch``)."""
