"""SGD and Adam with ``torch.optim``'s exact update rules, updating parameters in place."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from scratch.module import Parameter, flatten_parameters


class Optimizer:
    """Updates its parameters in place, all at once.

    The parameters move into one contiguous array and their gradients into another (see
    :func:`~scratch.module.flatten_parameters`): each update rule below is written once, on those
    whole arrays, and costs a handful of array operations whatever the number of layers. Every
    rule is elementwise, so this is the same arithmetic as a loop over the parameters.
    """

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if lr < 0:
            raise ValueError(f"invalid learning rate: {lr}")
        self.lr = lr
        self.values, self.grads = flatten_parameters(self.params)
        self._work = np.zeros_like(self.values)

    def _decayed_grad(self, weight_decay: float) -> np.ndarray:
        """``g = grad + weight_decay * param`` (into the work array), or the gradient itself."""
        if weight_decay == 0:
            return self.grads
        np.multiply(self.values, weight_decay, out=self._work)
        self._work += self.grads
        return self._work

    def _check_layout(self) -> None:
        """Refuse to step when a parameter no longer lives in this optimizer's arrays."""
        if any(p.value.base is not self.values or p.grad.base is not self.grads
               for p in self.params):
            raise RuntimeError(
                f"{type(self).__name__}: its parameters were moved by another optimizer built on "
                f"part of them; build one optimizer per set of parameters"
            )

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """``torch.optim.SGD``: with g = grad + wd·p, buf = g on the first step and
    buf = momentum·buf + (1 - dampening)·g after; the step is g + momentum·buf (nesterov) or buf;
    p -= lr · step.
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
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid momentum {momentum} or weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self._momentum_buffer: np.ndarray | None = None
        self._scaled = np.zeros_like(self.values) if momentum else None

    def step(self) -> None:
        self._check_layout()
        g = self._decayed_grad(self.weight_decay)
        if self.momentum != 0:
            g = self._momentum_direction(g)
        np.multiply(g, self.lr, out=self._work)
        self.values -= self._work

    def _momentum_direction(self, g: np.ndarray) -> np.ndarray:
        """Update the momentum buffer with ``g`` and return the step direction."""
        buf, scaled = self._momentum_buffer, self._scaled
        if buf is None:
            buf = self._momentum_buffer = g.copy()
        else:
            buf *= self.momentum
            np.multiply(g, 1 - self.dampening, out=scaled)
            buf += scaled
        if not self.nesterov:
            return buf
        np.multiply(buf, self.momentum, out=scaled)
        scaled += g
        return scaled


class Adam(Optimizer):
    """``torch.optim.Adam`` (not AdamW: weight decay is added to the gradient).

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
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 or weight_decay < 0:
            raise ValueError(f"invalid Adam settings betas={betas} eps={eps} wd={weight_decay}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.step_count = 0
        self._m = np.zeros_like(self.values)
        self._v = np.zeros_like(self.values)
        self._denom = np.zeros_like(self.values)

    def step(self) -> None:
        self._check_layout()
        self.step_count += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1**self.step_count)
        # A Python float, as in torch: a NumPy float64 scalar would upcast the float32 arithmetic.
        bias_correction2_sqrt = math.sqrt(1 - beta2**self.step_count)
        g, m, v, denom, work = self._decayed_grad(self.weight_decay), self._m, self._v, \
            self._denom, self._work
        # torch: m.lerp_(g, 1 - β1), i.e. m + (1 - β1)(g - m)
        np.subtract(g, m, out=denom)
        denom *= 1 - beta1
        m += denom
        v *= beta2
        np.multiply(g, g, out=denom)
        denom *= 1 - beta2
        v += denom
        np.sqrt(v, out=denom)
        denom /= bias_correction2_sqrt
        denom += self.eps
        np.divide(m, denom, out=work)
        work *= step_size
        self.values -= work
