"""One optimizer description, built as ``scratch.optim`` or ``torch.optim`` alike."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.errors import UserError

if TYPE_CHECKING:
    import torch

OPTIMIZER_NAMES = ("sgd", "momentum", "adam", "adamw")
ADAM_NAMES = ("adam", "adamw")
"""The optimizers that keep Adam's two moments per parameter and a step count."""
DEFAULT_WEIGHT_DECAY = {"adamw": 0.01}
"""The weight decay when none is given: torch.optim's (0.01 for AdamW, 0 for the others)."""


class SettingsError(UserError):
    """A training setting no run can have (a batch of 0 images, an unknown dtype...); the
    message names the setting."""


@dataclass(frozen=True)
class OptimizerSpec:
    """``sgd`` (plain), ``momentum`` (SGD with momentum), ``adam`` or ``adamw`` (Adam with
    decoupled weight decay), and their settings, named as in ``torch.optim`` (lr, momentum,
    nesterov, weight_decay, betas, eps)."""

    name: str
    lr: float
    settings: dict = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        name: str,
        lr: float,
        *,
        momentum: float | None = None,
        nesterov: bool = False,
        weight_decay: float | None = None,
    ) -> OptimizerSpec:
        """The optimizer ``name`` at learning rate ``lr``; ``momentum`` (0.9 when not given) and
        ``nesterov`` belong to the ``"momentum"`` optimizer alone (SettingsError elsewhere);
        ``weight_decay`` not given is torch's default (:data:`DEFAULT_WEIGHT_DECAY`)."""
        if name not in OPTIMIZER_NAMES:
            raise SettingsError(f"optimizer {name!r}: choose from {', '.join(OPTIMIZER_NAMES)}")
        if name != "momentum" and (momentum is not None or nesterov):
            raise SettingsError(f"optimizer {name!r}: momentum and nesterov are settings of the "
                                "'momentum' optimizer")
        if not (isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0 and
                math.isfinite(lr)):
            raise SettingsError(f"optimizer lr {lr!r}: must be a positive number")
        if weight_decay is None:
            weight_decay = DEFAULT_WEIGHT_DECAY.get(name, 0.0)
        settings: dict = {"weight_decay": weight_decay}
        if name == "momentum":
            settings |= {"momentum": 0.9 if momentum is None else momentum,
                         "nesterov": nesterov}
        return cls(name, lr, settings)

    def weight_decay_limit(self, dtype: str) -> tuple[float, str]:
        """(the weight decay from which training diverges by itself, whatever the data, and
        why). With SGD and AdamW the decay alone multiplies the weights by ``1 - lr·wd`` each
        step (AdamW's own step is at most about lr; with momentum m SGD's weights grow once
        ``lr·wd >= 2(1 + m)``); Adam squares the decay term, which overflows the dtype once
        ``wd`` reaches the square root of its largest number."""
        if self.name == "adam":
            return (math.sqrt(float(np.finfo(dtype).max)),
                    f"Adam squares the decay term, which overflows {dtype}")
        return (2 * (1 + self.settings.get("momentum", 0.0)) / self.lr,
                f"with --lr {self.lr:g} the decay alone grows the weights without bound")

    def build_scratch(self, params: Iterable[scratch.Parameter]) -> scratch.Optimizer:
        kind = {"adam": scratch.Adam, "adamw": scratch.AdamW}.get(self.name, scratch.SGD)
        return kind(params, lr=self.lr, **self.settings)

    def build_torch(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """``torch.optim`` with ``fused=True``: one kernel updates every parameter; the update
        rule is the one of the default implementation."""
        import torch

        kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(self.name,
                                                                          torch.optim.SGD)
        return kind(params, lr=self.lr, fused=True, **self.settings)
