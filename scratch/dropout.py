"""Inverted dropout, forward and backward by hand."""

from __future__ import annotations

import numpy as np

from scratch.module import Module


class Dropout(Module):
    """In training, zeroes each input with probability ``p`` and scales the rest by 1/(1 - p),
    so the expected output is the input; in eval, the identity.

    Forward:  ``y = x · mask / (1 - p)``, mask (N, D) True with probability 1 - p, drawn from
              ``rng`` and kept as ``.mask``
    Backward: ``dx = dy · mask / (1 - p)``

    ``p = 0`` keeps everything and ``p = 1`` drops everything, both exactly, drawing nothing.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = rng or np.random.default_rng()
        self.mask: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> y (N, D)."""
        if not self.training:
            self.scale = None
            return x
        self.mask = self.draw_mask(x.shape)
        return self.apply_mask(x, self.mask)

    def draw_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """A keep mask of ``shape``, each entry True with probability 1 - p."""
        if self.p in (0, 1):
            return np.full(shape, self.p == 0)
        return self.rng.random(shape) >= self.p

    def apply_mask(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``x · mask / (1 - p)`` (zeros when p = 1); keeps ``mask / (1 - p)`` for backward."""
        keep = 1 - self.p
        self.scale = mask * x.dtype.type(1 / keep if keep else 0)
        return x * self.scale

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dy (N, D) -> dx (N, D)."""
        return grad_out if self.scale is None else grad_out * self.scale

    def __repr__(self) -> str:
        return f"Dropout(p={self.p}, inplace=False)"
