"""The one network description both twins are built from: ``784-128-64-10`` plus an activation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

DTYPES = {"float32": np.float32, "float64": np.float64}


class ArchError(UserError, ValueError):
    """A malformed ``--arch``, ``--activation`` or ``--dtype``; the message names the flag."""


@dataclass(frozen=True)
class Architecture:
    """Layer widths, input first and classes last, and the hidden activation's name."""

    widths: tuple[int, ...]
    activation: str

    @classmethod
    def parse(cls, arch: str, activation: str = "relu") -> Architecture:
        parts = arch.split("-")  # ASCII digits only: int() refuses '²', and reads '٣' as 3
        if len(parts) < 2 or not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts):
            raise ArchError(
                f"--arch {arch!r}: expected positive widths joined by '-', input first and "
                "classes last, e.g. 784-128-64-10"
            )
        if activation not in scratch.ACTIVATIONS:
            raise ArchError(
                f"--activation {activation!r}: choose from {', '.join(sorted(scratch.ACTIVATIONS))}"
            )
        return cls(tuple(int(p) for p in parts), activation)

    @property
    def spec(self) -> str:
        """The ``--arch`` string, e.g. ``784-128-64-10``."""
        return "-".join(map(str, self.widths))

    def build_scratch(self, *, seed: int, dtype: str = "float32") -> scratch.Sequential:
        """The NumPy twin, its weights drawn from ``default_rng(seed)`` as ``nn.Linear`` draws."""
        return scratch.mlp(
            self.widths, self.activation, rng=np.random.default_rng(seed), dtype=parse_dtype(dtype)
        )

    def build_torch(self, *, dtype: str = "float32", device: str = "cpu") -> nn.Sequential:
        """The PyTorch twin with PyTorch's own initial weights (copy the scratch ones over them)."""
        import torch_ref

        return torch_ref.mlp(self.widths, self.activation, dtype=torch_dtype(dtype), device=device)


def parse_dtype(name: str) -> type[np.floating]:
    if name not in DTYPES:
        raise ArchError(f"--dtype {name!r}: choose from {', '.join(DTYPES)}")
    return DTYPES[name]


def torch_dtype(name: str) -> torch.dtype:
    import torch

    parse_dtype(name)
    return getattr(torch, name)
