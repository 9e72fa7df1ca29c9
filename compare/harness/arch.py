"""The one network description both twins are built from: ``784-128-64-10`` plus an activation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.errors import UserError
from compare.layers import ACTIVATIONS

if TYPE_CHECKING:
    import torch
    from torch import nn

DTYPES = {"float32": np.float32, "float64": np.float64}


class ArchError(UserError, ValueError):
    """A malformed ``--arch``, ``--activation`` or ``--dtype``; the message names the flag."""


@dataclass(frozen=True)
class Architecture:
    """Layer widths, input first and classes last, and the hidden activation: its name in the
    layer table and its settings (every one, defaults filled in: LeakyReLU's slope)."""

    widths: tuple[int, ...]
    activation: str
    activation_settings: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not (isinstance(self.widths, tuple | list) and len(self.widths) >= 2
                and all(is_width(width) for width in self.widths)):
            raise ArchError(f"--arch {self.widths!r}: expected positive widths, input first and "
                            "classes last, e.g. (784, 128, 64, 10)")
        kind = ACTIVATIONS.get(self.activation) if isinstance(self.activation, str) else None
        if kind is None:
            raise ArchError(f"--activation {self.activation!r}: choose from "
                            f"{', '.join(ACTIVATIONS)}")
        try:
            settings = kind.complete(dict(self.activation_settings))
        except (TypeError, ValueError) as error:
            raise ArchError(f"--activation {self.activation}: {error}") from None
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "activation_settings", tuple(settings.items()))

    @classmethod
    def parse(cls, arch: str, activation: str = "relu",
              settings: Mapping[str, object] | None = None) -> Architecture:
        if not (settings is None or isinstance(settings, Mapping)):
            raise ArchError(f"--activation {activation}: settings must be a mapping of setting "
                            f"names to numbers, got {type(settings).__name__}")
        parts = arch.split("-") if isinstance(arch, str) else []
        # ASCII digits only: int() refuses '²', and reads '٣' as 3
        if len(parts) < 2 or not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts):
            raise ArchError(
                f"--arch {arch!r}: expected positive widths joined by '-', input first and "
                "classes last, e.g. 784-128-64-10"
            )
        return cls(tuple(int(p) for p in parts), activation, tuple((settings or {}).items()))

    @property
    def spec(self) -> str:
        """The ``--arch`` string, e.g. ``784-128-64-10``."""
        return "-".join(map(str, self.widths))

    @property
    def settings(self) -> dict[str, float]:
        """The activation's settings by name, e.g. ``{"negative_slope": 0.01}``."""
        return dict(self.activation_settings)

    @property
    def activation_label(self) -> str:
        """The activation as a person reads it: ``relu``, ``leaky_relu(negative_slope=0.1)``."""
        inside = ", ".join(f"{name}={value:g}" for name, value in self.activation_settings)
        return f"{self.activation}({inside})" if inside else self.activation

    def to_meta(self) -> dict:
        """The network as checkpoint meta and config JSON hold it."""
        return {"arch": self.spec, "activation": self.activation,
                "activation_settings": self.settings}

    @classmethod
    def from_meta(cls, meta: Mapping[str, object]) -> Architecture:
        """The network :meth:`to_meta` wrote (ArchError if it is not one): every setting of its
        activation named, never a default in place of the one trained with (meta written before
        activations had settings holds none, for activations that have none)."""
        settings = meta.get("activation_settings", {})
        if not isinstance(settings, dict):
            raise ArchError(f"activation_settings should be an object, found {settings!r}")
        architecture = cls.parse(meta["arch"], meta["activation"], settings)
        missing = [name for name, _ in architecture.activation_settings if name not in settings]
        if missing:
            raise ArchError(f"activation_settings lacks {missing[0]}, a setting of "
                            f"{architecture.activation}")
        return architecture

    def build_scratch(self, *, seed: int, dtype: str = "float32") -> scratch.Sequential:
        """The NumPy twin, its weights drawn from ``default_rng(seed)`` as ``nn.Linear`` draws."""
        activation = ACTIVATIONS[self.activation].scratch_factory(self.settings)
        return scratch.mlp(self.widths, activation, rng=np.random.default_rng(seed),
                           dtype=parse_dtype(dtype))

    def build_torch(self, *, dtype: str = "float32", device: str = "cpu") -> nn.Sequential:
        """The PyTorch twin with PyTorch's own initial weights (copy the scratch ones over them)."""
        import torch_ref

        activation = ACTIVATIONS[self.activation].torch_factory(self.settings)
        return torch_ref.mlp(self.widths, activation, dtype=torch_dtype(dtype), device=device)


def is_width(width: object) -> bool:
    """A layer width: a positive int (not a bool)."""
    return isinstance(width, int) and not isinstance(width, bool) and width > 0


def parse_dtype(name: str) -> type[np.floating]:
    if not isinstance(name, str) or name not in DTYPES:
        raise ArchError(f"--dtype {name!r}: choose from {', '.join(DTYPES)}")
    return DTYPES[name]


def torch_dtype(name: str) -> torch.dtype:
    import torch

    parse_dtype(name)
    return getattr(torch, name)
