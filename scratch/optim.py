"""SGD, Adam and AdamW with ``torch.optim``'s exact update rules, updating each parameter in
place."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from scratch.module import Parameter


class Optimizer:
    """Updates its parameters' ``value`` arrays in place from their ``grad`` arrays."""

    def __init__(self, params: Iterable[Parameter], lr: float, weight_decay: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter appears more than once in the list")
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"invalid learning rate {lr} or weight_decay {weight_decay}")
        self.lr, self.weight_decay = lr, weight_decay

    def decayed_grad(self, p: Parameter) -> np.ndarray:
        """``g = grad + weight_decay · value`` (L2 regularization folded into the gradient)."""
        return p.grad + p.value * self.weight_decay if self.weight_decay else p.grad

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What a continued run needs besides the parameters, named as ``torch.optim`` names it:
        ``{"state": {parameter index: {name: array}}, ...}`` (arrays are copies)."""
        return {"state": {index: {name: array.copy() for name, array in arrays.items()}
                          for index, arrays in self._state().items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from :meth:`state_dict`: each state array is copied into this optimizer's."""
        for index, arrays in self._state().items():
            for name, array in arrays.items():
                saved = state_dict["state"][index][name]
                if saved.shape != array.shape:
                    raise ValueError(f"optimizer state {index}.{name} has shape {saved.shape}, "
                                     f"the parameter {array.shape}")
                np.copyto(array, saved, casting="same_kind")

    def _state(self) -> dict[int, dict[str, np.ndarray]]:
        """This optimizer's own arrays, by parameter index and name."""
        return {}


class SGD(Optimizer):
    """``torch.optim.SGD``. With g = grad + wd·p: buf = g on the first step and
    buf = momentum·buf + (1 - dampening)·g after; the step is g + momentum·buf (nesterov) or buf;
    then p -= lr · step. Without momentum, p -= lr · g.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        if momentum < 0:
            raise ValueError(f"invalid momentum {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening, self.nesterov = momentum, dampening, nesterov
        self.momentum_buffers: list[np.ndarray | None] = [None] * len(self.params)

    def _state(self) -> dict[int, dict[str, np.ndarray]]:
        return {index: {"momentum_buffer": buf} for index, buf in enumerate(self.momentum_buffers)
                if buf is not None}

    def load_state_dict(self, state_dict: dict) -> None:
        for index in state_dict["state"]:
            self.momentum_buffers[int(index)] = np.zeros_like(self.params[int(index)].value)
        super().load_state_dict(state_dict)

    def step(self) -> None:
        for index, p in enumerate(self.params):
            g = self.decayed_grad(p)
            if self.momentum:
                g = self._momentum_step(index, g)
            p.value -= self.lr * g

    def _momentum_step(self, index: int, g: np.ndarray) -> np.ndarray:
        """Update parameter ``index``'s momentum buffer with ``g``; return the step direction."""
        buf = self.momentum_buffers[index]
        if buf is None:
            buf = self.momentum_buffers[index] = g.copy()
        else:
            buf *= self.momentum
            buf += g * (1 - self.dampening)
        return g + buf * self.momentum if self.nesterov else buf


class Adam(Optimizer):
    """``torch.optim.Adam``: weight decay is L2 folded into the gradient, g = grad + wd·p
    (:class:`AdamW` decouples it).

    m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g², then
    p -= (lr / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + eps).
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0:
            raise ValueError(f"invalid Adam settings betas={betas} eps={eps}")
        self.betas, self.eps = betas, eps
        self.step_count = 0
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.v = [np.zeros_like(p.value) for p in self.params]

    def _state(self) -> dict[int, dict[str, np.ndarray]]:
        return {index: {"exp_avg": m, "exp_avg_sq": v}
                for index, (m, v) in enumerate(zip(self.m, self.v, strict=True))}

    def state_dict(self) -> dict:
        return super().state_dict() | {"step": self.step_count}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.step_count = int(state_dict["step"])

    def step(self) -> None:
        self.step_count += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1**self.step_count)
        # A Python float, as in torch: a NumPy float64 scalar would upcast float32 arithmetic.
        bias_correction2_sqrt = math.sqrt(1 - beta2**self.step_count)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = self.adam_grad(p)
            m += (g - m) * (1 - beta1)  # torch: m.lerp_(g, 1 - β1)
            v *= beta2
            v += g * g * (1 - beta2)
            denom = np.sqrt(v) / bias_correction2_sqrt + self.eps
            p.value -= m / denom * step_size

    def adam_grad(self, p: Parameter) -> np.ndarray:
        """The g the moments see: Adam folds the weight decay into it, ``g = grad + wd·p``."""
        return self.decayed_grad(p)


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (Loshchilov & Hutter).

    The decay shrinks the weights before the Adam update and never enters the moments:
    p -= lr·wd·p, then Adam's update with g = grad (no decay term):
    m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g²,
    p -= (lr / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + eps).
    With wd = 0 it is :class:`Adam`. The default weight decay is torch's, 0.01.
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, *,
                 weight_decay: float = 1e-2, **adam_settings: Any) -> None:
        """Adam's settings (``betas``, ``eps``), with torch's default decay for AdamW."""
        super().__init__(params, lr, weight_decay=weight_decay, **adam_settings)

    def adam_grad(self, p: Parameter) -> np.ndarray:
        """Decay ``p`` in place, ``p *= 1 - lr·wd``; the moments see the plain gradient."""
        if self.weight_decay:
            # p -= lr·wd·p written as torch writes it: p - p·(lr·wd) rounds differently.
            p.value *= 1 - self.lr * self.weight_decay
        return p.grad
