"""The layer table and what each kind of layer means (see :mod:`compare.layers.table`)."""

from compare.layers.table import (
    ACTIVATIONS,
    DROPOUT,
    LAYER_KINDS,
    NORMS,
    LayerKind,
    Setting,
    kind_of,
    torch_layout,
)

__all__ = ["ACTIVATIONS", "DROPOUT", "LAYER_KINDS", "NORMS", "LayerKind", "Setting", "kind_of",
           "torch_layout"]
