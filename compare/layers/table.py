"""The layer table: every kind of layer the twins are built from, declared once.

A kind names its scratch class and its ``torch.nn`` class, the settings both constructors take
(the same keyword in both), the parameters scratch holds transposed against PyTorch's layout, and,
for a hidden activation, which of its units count as dead or saturated. The CLI's choices and
help, the building of both twins, the weight copy, parity, insight, checkpoints and the tests
derive from this table; a network holding a layer the table lacks is refused by name.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

import scratch
from compare.layers.activity import Inactive, Saturation, never_positive

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Setting:
    """A number a kind's constructors take, by the same keyword in scratch and torch."""

    name: str
    default: float
    low: float
    high: float
    help: str

    @property
    def flag(self) -> str:
        """The CLI flag that sets it: ``negative_slope`` -> ``--negative-slope``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: object) -> float:
        """``value`` (any real number but a bool: a NumPy scalar too) as a float in [low, high],
        -0.0 as 0.0 (ValueError saying what is wrong)."""
        number = real(value)
        if not math.isfinite(number):
            raise ValueError(f"{self.name} must be a finite number, got {reprlib.repr(value)}")
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.name} must be in [{self.low:g}, {self.high:g}], got "
                             f"{reprlib.repr(value)}")
        return number + 0.0


def real(value: object) -> float:
    """``value`` as a float: NaN for what is no real number (a bool, a string), inf for an
    integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class LayerKind:
    """One kind of layer, as both twins have it."""

    name: str
    scratch: type[scratch.Module]
    torch: str
    """The class's name in ``torch.nn``."""
    settings: tuple[Setting, ...] = ()
    arguments: tuple[str, ...] = ()
    """Constructor arguments other than settings (Linear's in_features, out_features; Softmax's
    dim): attributes of a built layer, by the same name in both twins."""
    takes_dtype: bool = False
    """Its constructors take ``dtype`` (and torch's ``device``): it holds arrays."""
    transposed: tuple[str, ...] = ()
    """Parameters scratch holds transposed: Linear's weight is (in, out), PyTorch's (out, in)."""
    symbols: Mapping[str, str] = field(default_factory=dict)
    """How parity tables name a parameter's gradient: ``{"weight": "W"}`` gives dW."""
    activation: bool = False
    """Offered by ``--activation`` between the Linear layers."""
    inactive: Inactive | None = None
    """Which hidden units are dead or saturated (None: this kind's units never are)."""
    gain: Callable[..., float] = lambda **settings: 1.0
    """An activation's gain, ``torch.nn.init.calculate_gain``'s, from its settings: the factor
    Xavier and Kaiming initialization scale the weights feeding it by."""
    norm: str = ""
    """The name ``--norm`` offers it by (empty: not a normalization)."""

    def torch_class(self) -> type[nn.Module]:
        from torch import nn

        found = getattr(nn, self.torch, None)
        if not (isinstance(found, type) and issubclass(found, nn.Module)):
            raise ValueError(f"the layer table's {self.name} names torch.nn.{self.torch}, which "
                             "is not a torch.nn module class")
        return found

    def complete(self, given: Mapping[str, object]) -> dict[str, float]:
        """Every setting of this kind: ``given`` checked, the defaults for the rest
        (ValueError naming a setting this kind does not have, or a bad value)."""
        known = {setting.name: setting for setting in self.settings}
        unknown = sorted(set(given) - set(known), key=repr)  # keys of any type
        if unknown:
            raise ValueError(f"{self.name} has no setting {unknown[0]!r}"
                             + (f"; its settings: {', '.join(known)}" if known else ""))
        return {name: setting.check(given.get(name, setting.default))
                for name, setting in known.items()}

    def scratch_factory(self, settings: Mapping[str, float]) -> Callable[[], scratch.Module]:
        return partial(self.scratch, **settings)

    def torch_factory(self, settings: Mapping[str, float]) -> Callable[[], nn.Module]:
        return partial(self.torch_class(), **settings)

    def torch_like(self, layer: scratch.Module, **dtype_and_device: object) -> nn.Module:
        """A torch module of this kind with the sizes and settings of the scratch ``layer``
        (its own initial parameters)."""
        arguments = {name: getattr(layer, name) for name in self.arguments}
        extra = dtype_and_device if self.takes_dtype else {}
        return self.torch_class()(**arguments, **self.settings_of(layer), **extra)

    def settings_of(self, layer: object) -> dict[str, float | None]:
        """The settings a built layer of this kind holds (attributes named as the settings; None
        as it is: batch norm's ``momentum=None``)."""
        missing = [s.name for s in self.settings if not hasattr(layer, s.name)]
        if missing:
            raise ValueError(f"{type(layer).__name__} keeps no attribute {missing[0]!r}, a "
                             f"setting the layer table declares for {self.name}")
        values = {setting.name: getattr(layer, setting.name) for setting in self.settings}
        return {name: None if value is None else float(value) for name, value in values.items()}

    def torch_layout(self, name: str, array: np.ndarray) -> np.ndarray:
        """Scratch parameter ``name`` as PyTorch lays it out (a view); also goes back."""
        return array.T if name in self.transposed else array

    def symbol(self, name: str) -> str:
        return self.symbols.get(name, name)


EPS = Setting("eps", 1e-5, 1e-12, 1.0, "added to the variance before its square root")
NORM_SYMBOLS = {"weight": "gamma", "bias": "beta"}

LAYER_KINDS: tuple[LayerKind, ...] = (
    LayerKind("linear", scratch.Linear, "Linear", arguments=("in_features", "out_features"),
              takes_dtype=True,
              transposed=("weight",),
              symbols={"weight": "W", "bias": "b"}),
    LayerKind("relu", scratch.ReLU, "ReLU", activation=True, inactive=never_positive,
              gain=lambda: math.sqrt(2.0)),
    LayerKind("sigmoid", scratch.Sigmoid, "Sigmoid", activation=True,
              inactive=Saturation(0.0, 1.0)),
    LayerKind("tanh", scratch.Tanh, "Tanh", activation=True,
              inactive=Saturation(-1.0, 1.0), gain=lambda: 5.0 / 3),
    LayerKind("leaky_relu", scratch.LeakyReLU, "LeakyReLU", activation=True,
              inactive=never_positive,
              settings=(Setting("negative_slope", 0.01, 0.0, 1.0,
                                "the slope of a leaky ReLU for inputs below 0"),),
              gain=lambda negative_slope: math.sqrt(2.0 / (1 + negative_slope ** 2))),
    LayerKind("none", scratch.Identity, "Identity", activation=True),
    LayerKind("batch_norm", scratch.BatchNorm1d, "BatchNorm1d", arguments=("num_features",),
              settings=(EPS, Setting("momentum", 0.1, 0.0, 1.0,
                                     "how far one batch moves the running estimates")),
              takes_dtype=True, symbols=NORM_SYMBOLS, norm="batch"),
    LayerKind("layer_norm", scratch.LayerNorm, "LayerNorm", arguments=("normalized_shape",),
              settings=(EPS,), takes_dtype=True, symbols=NORM_SYMBOLS, norm="layer"),
    LayerKind("dropout", scratch.Dropout, "Dropout",
              settings=(Setting("p", 0.5, 0.0, 1.0, "the probability of zeroing an input"),)),
    LayerKind("softmax", scratch.Softmax, "Softmax", arguments=("dim",)),
)

ACTIVATIONS: dict[str, LayerKind] = {kind.name: kind for kind in LAYER_KINDS if kind.activation}
"""The kinds ``--activation`` offers, by name."""

NORMS: dict[str, LayerKind] = {kind.norm: kind for kind in LAYER_KINDS if kind.norm}
"""The kinds ``--norm`` offers, by its name for them: ``batch``, ``layer``."""

DROPOUT: LayerKind = next(kind for kind in LAYER_KINDS if kind.scratch is scratch.Dropout)
LINEAR: LayerKind = next(kind for kind in LAYER_KINDS if kind.scratch is scratch.Linear)


def linear_weights(model: Iterable[object]) -> list[tuple[str, Any]]:
    """(state dict name, weight parameter) of every Linear layer of a network of either twin, the
    first first: ``("0.weight", ...)``; a normalization's weight (gamma) is not one of them."""
    return [(f"{index}.weight", layer.weight) for index, layer in enumerate(model)
            if kind_of(layer) is LINEAR]


def torch_layout(layer: scratch.Module, kind: LayerKind | None, name: str, array: np.ndarray
                 ) -> np.ndarray:
    """``layer``'s parameter or buffer ``name`` as PyTorch lays it out (a view; also goes back):
    through the transposes of ``kind``, the layer's kind (None: none), or, for an array of a
    module inside it (``lin.weight``), of that module's kind in the table."""
    *path, leaf = name.split(".")
    for part in path:
        layer = dict(layer.named_children())[part]
    if path:
        kind = kind_of(layer) or next((kind for kind in LAYER_KINDS
                                       if isinstance(layer, kind.scratch)), None)
    return kind.torch_layout(leaf, array) if kind else array


def kind_of(layer: object) -> LayerKind | None:
    """The kind of a scratch layer (by its exact class) or of a torch module (by its ``torch.nn``
    class); None for a layer the table lacks."""
    cls = type(layer)
    for kind in LAYER_KINDS:
        if cls is kind.scratch or (cls.__name__ == kind.torch
                                   and cls.__module__.startswith("torch.nn.")):
            return kind
    return None
