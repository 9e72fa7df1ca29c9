"""The layer table and what each kind of layer means (see :mod:`compare.layers.table`)."""

from compare.layers.table import (
    ACTIVATIONS,
    DROPOUT,
    LAYER_KINDS,
    LINEAR,
    NORMS,
    LayerKind,
    Setting,
    kind_of,
    linear_weights,
    torch_layout,
)

__all__ = ["ACTIVATIONS", "DROPOUT", "LAYER_KINDS", "LINEAR", "NORMS", "LayerKind", "Setting",
           "kind_of", "linear_weights", "torch_layout"]
