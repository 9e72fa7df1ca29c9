"""The harness that knows both twins: weight copying, parity checks, training, TensorBoard, CLI.

``compare.check_layer`` checks any scratch layer against a torch module (importing torch when
first used, so that ``import compare`` does not)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compare.harness.check_layer import LayerCheckError, LayerReport, check_layer

__all__ = ["LayerCheckError", "LayerReport", "check_layer"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from compare.harness import check_layer

        return getattr(check_layer, name)
    raise AttributeError(f"module 'compare' has no attribute {name!r}")
