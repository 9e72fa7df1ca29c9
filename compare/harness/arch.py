"""The one network description both twins are built from: ``784-128-64-10``, an activation, and
optionally a normalization, dropout and an initialization scheme."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.errors import UserError
from compare.layers import ACTIVATIONS, DROPOUT, NORMS
from compare.layers.table import real
from scratch.init import SCHEMES

if TYPE_CHECKING:
    import torch
    from torch import nn

DTYPES = {"float32": np.float32, "float64": np.float64}
NORM_CHOICES = ("none", *NORMS)
"""What ``--norm`` offers: none, or a normalization after every hidden Linear."""
INIT_CHOICES = ("torch", *SCHEMES)
"""What ``--init`` offers: nn.Linear's own draw, or one of scratch.init's schemes."""
DEFAULT_INIT_STD = 0.01
LAYER_FIELDS = ("norm", "dropout", "init", "init_std")
"""What an Architecture holds besides widths and activation (meta written before them lacks
them)."""


class ArchError(UserError, ValueError):
    """A malformed ``--arch``, ``--activation``, ``--norm``, ``--dropout``, ``--init`` or
    ``--dtype``; the message names the flag."""


@dataclass(frozen=True)
class Architecture:
    """Layer widths, input first and classes last, and the hidden activation: its name in the
    layer table and its settings (every one, defaults filled in: LeakyReLU's slope).

    ``norm`` (``none``, ``batch``, ``layer``) goes after every hidden Linear and Dropout with
    probability ``dropout`` after every hidden activation. ``init`` is how the scratch twin draws
    its Linear weights (the torch twin gets a copy): ``torch`` as ``nn.Linear`` does, or a
    scheme of :data:`scratch.init.SCHEMES` with zero biases; ``init_std`` is ``normal``'s.
    """

    widths: tuple[int, ...]
    activation: str
    activation_settings: tuple[tuple[str, float], ...] = ()
    norm: str = "none"
    dropout: float = 0.0
    init: str = "torch"
    init_std: float | None = None

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
        self.check_layers()

    def check_layers(self) -> None:
        """``norm`` and ``dropout`` checked (ArchError naming the flag); ``dropout`` a float."""
        if not (isinstance(self.norm, str) and self.norm in NORM_CHOICES):
            raise ArchError(f"--norm {self.norm!r}: choose from {', '.join(NORM_CHOICES)}")
        try:
            object.__setattr__(self, "dropout", DROPOUT.settings[0].check(self.dropout))
        except ValueError as error:
            raise ArchError(f"--dropout {reprlib.repr(self.dropout)}: {error}") from None
        self.check_init()

    def check_init(self) -> None:
        """``init`` and ``init_std`` checked (ArchError naming the flag); ``init_std`` is
        ``normal``'s, 0.01 when not given."""
        if not (isinstance(self.init, str) and self.init in INIT_CHOICES):
            raise ArchError(f"--init {self.init!r}: choose from {', '.join(INIT_CHOICES)}")
        std = self.init_std
        if self.init != "normal":
            if std is not None:
                raise ArchError(f"--init-std {reprlib.repr(std)}: the std of --init normal, "
                                f"not of --init {self.init}")
            return
        if std is None:
            std = DEFAULT_INIT_STD
        if not (real(std) > 0 and math.isfinite(real(std))):
            raise ArchError(f"--init-std {reprlib.repr(std)}: must be a positive number")
        object.__setattr__(self, "init_std", float(std))

    def check_batch_size(self, batch_size: int, training_rows: int | None = None) -> None:
        """ArchError when this network cannot train on batches of ``batch_size`` from a training
        set of ``training_rows`` examples: batch norm needs 2 examples or more (an epoch's last
        batch holds 1 only when the epoch does: see ``compare.training.config.batch_bounds``)."""
        if self.norm != "batch":
            return
        why = "batch norm normalizes each feature over the batch, which needs at least 2 examples"
        if batch_size < 2:
            raise ArchError(f"--norm batch with --batch-size {batch_size}: {why}")
        if training_rows is not None and training_rows < 2:
            raise ArchError(f"--norm batch with a training set of {training_rows} example "
                            f"(--val-size leaves the rest): {why}")

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
        """The activation as a person reads it: ``relu``, ``leaky_relu(negative_slope=0.1)``,
        then any normalization, dropout and initialization: ``relu, norm batch, dropout 0.2``."""
        inside = ", ".join(f"{name}={value:g}" for name, value in self.activation_settings)
        label = f"{self.activation}({inside})" if inside else self.activation
        extras = [f"norm {self.norm}"] if self.norm != "none" else []
        extras += [f"dropout {self.dropout:g}"] if self.dropout else []
        extras += [f"init {self.init}"] if self.init != "torch" else []
        extras += [f"std {self.init_std:g}"] if self.init_std is not None else []
        return ", ".join([label, *extras])

    def to_meta(self) -> dict:
        """The network as checkpoint meta and config JSON hold it."""
        return {"arch": self.spec, "activation": self.activation,
                "activation_settings": self.settings, "norm": self.norm,
                "dropout": self.dropout, "init": self.init, "init_std": self.init_std}

    @classmethod
    def from_meta(cls, meta: Mapping[str, object]) -> Architecture:
        """The network :meth:`to_meta` wrote (ArchError if it is not one): every setting of its
        activation named, never a default in place of the one trained with (meta written before
        activations had settings holds none, for activations that have none; meta written before
        norm, dropout and init holds none of them, for a network that had none)."""
        settings = meta.get("activation_settings", {})
        if not isinstance(settings, dict):
            raise ArchError(f"activation_settings should be an object, found {settings!r}")
        architecture = replace(cls.parse(meta["arch"], meta["activation"], settings),
                               **{name: meta[name] for name in LAYER_FIELDS if name in meta})
        missing = [name for name, _ in architecture.activation_settings if name not in settings]
        if missing:
            raise ArchError(f"activation_settings lacks {missing[0]}, a setting of "
                            f"{architecture.activation}")
        return architecture

    def build_scratch(self, *, seed: int, dtype: str = "float32") -> scratch.Sequential:
        """The NumPy twin, its weights drawn from ``default_rng(seed)`` as ``nn.Linear`` draws
        them, then, for an ``init`` other than ``torch``, redrawn by that scheme."""
        activation = ACTIVATIONS[self.activation].scratch_factory(self.settings)
        norm = (NORMS[self.norm].scratch_factory({"dtype": parse_dtype(dtype)})
                if self.norm != "none" else None)
        rng = np.random.default_rng(seed)
        model = scratch.mlp(self.widths, activation, norm=norm, dropout=self.dropout, rng=rng,
                            dtype=parse_dtype(dtype))
        if self.init != "torch":
            self.redraw(model, rng)
        return model

    def redraw(self, model: scratch.Sequential, rng: np.random.Generator) -> None:
        """Every Linear's weight drawn again by the ``init`` scheme, its bias zeroed; the gain is
        the activation's for hidden layers, 1 for the last (it feeds the softmax)."""
        linears = [layer for layer in model if isinstance(layer, scratch.Linear)]
        hidden_gain = ACTIVATIONS[self.activation].gain(**self.settings)
        for index, layer in enumerate(linears):
            gain = hidden_gain if index < len(linears) - 1 else 1.0
            SCHEMES[self.init](layer.weight.value, rng, gain, self.init_std)
            layer.bias.value[...] = 0

    def build_torch(self, *, dtype: str = "float32", device: str = "cpu") -> nn.Sequential:
        """The PyTorch twin with PyTorch's own initial weights (copy the scratch ones over them)."""
        import torch_ref

        activation = ACTIVATIONS[self.activation].torch_factory(self.settings)
        norm = (NORMS[self.norm].torch_factory({"dtype": torch_dtype(dtype), "device": device})
                if self.norm != "none" else None)
        return torch_ref.mlp(self.widths, activation, norm=norm, dropout=self.dropout,
                             dtype=torch_dtype(dtype), device=device)


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
