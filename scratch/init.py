"""Weight initialization: the draw ``torch.nn.Linear`` makes, and four schemes of
``torch.nn.init``.

Every scheme fills a Linear weight W of shape (in, out), scratch's layout (PyTorch's is the
transpose, (out, in)), in place. For W (in, out), ``fan_in = in``, the inputs each neuron sums,
and ``fan_out = out``:

    zeros    W = 0                                                  (torch.nn.init.zeros_)
    normal   W ~ N(0, std²)                                         (torch.nn.init.normal_)
    xavier   W ~ U(-a, a),  a = gain · sqrt(6 / (fan_in + fan_out)) (xavier_uniform_, Glorot)
    kaiming  W ~ N(0, σ²),  σ = gain / sqrt(fan_in)                 (kaiming_normal_, He)

``gain`` is ``torch.nn.init.calculate_gain``'s for the activation the layer feeds: 1 for none and
sigmoid, 5/3 for tanh, sqrt(2) for ReLU, sqrt(2 / (1 + slope²)) for leaky ReLU. It makes up for
what the activation does to the variance: ReLU zeroes half its inputs, so the weights before it
are sqrt(2) larger. (Kaiming with gain 1, before a sigmoid, is what is also called LeCun normal.)
Each draw is made in float64 and rounded once to W's dtype.
"""

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
    """W = 0. Every neuron of a layer then computes the same thing, gets the same gradient and
    stays the same as the others: training can never tell them apart (``rng``, ``gain`` and
    ``std`` are unused)."""
    weight[...] = 0


def normal_(weight: np.ndarray, rng: np.random.Generator, gain: float, std: float) -> None:
    """W ~ N(0, std²), whatever the layer's size (``gain`` unused): too small a std and the
    signal fades layer after layer, too large and a sigmoid or tanh saturates."""
    weight[...] = rng.normal(0.0, std, size=weight.shape)


def xavier_uniform_(weight: np.ndarray, rng: np.random.Generator, gain: float, std: float
                    ) -> None:
    """Glorot uniform, W (in, out) ~ U(-a, a) with a = gain · sqrt(6 / (fan_in + fan_out)) (``std``
    unused). U(-a, a) has variance a² / 3 = gain² · 2 / (fan_in + fan_out): a compromise between
    1 / fan_in, which keeps the forward signal's variance level across layers, and 1 / fan_out,
    which keeps the gradients' level."""
    fan_in, fan_out = weight.shape
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    weight[...] = rng.uniform(-bound, bound, size=weight.shape)


def kaiming_normal_(weight: np.ndarray, rng: np.random.Generator, gain: float, std: float
                    ) -> None:
    """He normal, W (in, out) ~ N(0, σ²) with σ = gain / sqrt(fan_in), fan_in = in (``std``
    unused): each output sums fan_in products w · x, so its variance is fan_in · σ² · E[x²] =
    gain² · E[x²]; with ReLU's gain sqrt(2), the next layer's outputs keep the variance of this
    one's although ReLU zeroes half of them in between."""
    fan_in = weight.shape[0]
    weight[...] = rng.normal(0.0, gain / np.sqrt(fan_in), size=weight.shape)


SCHEMES = {"zeros": zeros_, "normal": normal_, "xavier": xavier_uniform_,
           "kaiming": kaiming_normal_}
"""The initializations a network can be redrawn with, besides ``nn.Linear``'s own (``torch``)."""
