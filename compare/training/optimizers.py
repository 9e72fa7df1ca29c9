"""One optimizer description, built as ``scratch.optim`` or ``torch.optim`` alike."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import scratch

if TYPE_CHECKING:
    import torch

OPTIMIZER_NAMES = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class OptimizerSpec:
    """``sgd`` (plain), ``momentum`` (SGD with momentum) or ``adam``, and their settings, named as
    in ``torch.optim`` (lr, momentum, nesterov, weight_decay, betas, eps)."""

    name: str
    lr: float
    settings: dict = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        name: str,
        lr: float,
        *,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> OptimizerSpec:
        if name not in OPTIMIZER_NAMES:
            raise ValueError(f"--optimizer {name!r}: choose from {', '.join(OPTIMIZER_NAMES)}")
        if not lr > 0:
            raise ValueError(f"--lr must be positive, got {lr}")
        settings: dict = {"weight_decay": weight_decay}
        if name == "momentum":
            settings |= {"momentum": momentum, "nesterov": nesterov}
        return cls(name, lr, settings)

    def build_scratch(self, params: Iterable[scratch.Parameter]) -> scratch.Optimizer:
        if self.name == "adam":
            return scratch.Adam(params, lr=self.lr, **self.settings)
        return scratch.SGD(params, lr=self.lr, **self.settings)

    def build_torch(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """``torch.optim`` with ``fused=True``: one kernel updates every parameter; the update
        rule is the one of the default implementation."""
        import torch

        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, fused=True, **self.settings)
        return torch.optim.SGD(params, lr=self.lr, fused=True, **self.settings)
