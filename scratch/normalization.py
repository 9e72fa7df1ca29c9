"""Batch and layer normalization, forward and backward by hand.

Both standardize ``x`` (N, D) and then scale and shift it with learned ``weight`` (gamma) and
``bias`` (beta), each (D,):

    x̂ = (x - mean) / sqrt(var + eps)        y = weight · x̂ + bias

Batch norm takes mean and var over the batch (axis 0, one pair per feature); layer norm over
the features (axis 1, one pair per example). Their backward passes share one formula: for a
standardization over ``m`` values along an axis, with ``g = dL/dx̂ = dy · weight``,

    dx = (g - mean(g) - x̂ · mean(g · x̂)) / sqrt(var + eps)          (means along that axis)

which is the whole chain through mean and var written out at once.
"""

from __future__ import annotations

import numpy as np

from scratch.module import Module, Parameter


def standardize_backward(g: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axis: int
                         ) -> np.ndarray:
    """dL/dx of ``x̂ = (x - mean) · inv_std`` (mean and var over ``axis``) from ``g = dL/dx̂``;
    every array (N, D), ``inv_std`` broadcasting along ``axis``."""
    mean_g = g.mean(axis=axis, keepdims=True)
    mean_g_x_hat = (g * x_hat).mean(axis=axis, keepdims=True)
    return (g - mean_g - x_hat * mean_g_x_hat) * inv_std


class Normalization(Module):
    """What batch and layer norm share: weight = 1 and bias = 0 of shape (D,), ``eps``, and the
    backward through ``y = weight · x̂ + bias``."""

    axis: int
    """The axis mean and var are taken over in training."""

    def __init__(self, features: int, eps: float, dtype: np.dtype) -> None:
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise ValueError(f"{type(self).__name__} needs a positive number of features, got "
                             f"{features!r}")
        self.eps = float(eps)
        self.weight = Parameter.of(np.ones(features, dtype=dtype))
        self.bias = Parameter.of(np.zeros(features, dtype=dtype))

    def check_input(self, x: np.ndarray) -> None:
        features = self.weight.value.shape[0]
        if x.ndim != 2 or x.shape[1] != features:
            raise ValueError(f"{self!r} expects input of shape (N, {features}), got {x.shape}")

    def scale_and_shift(self, x_hat: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
        """Keeps x̂ and 1/sqrt(var + eps) for backward; returns ``weight · x̂ + bias``."""
        self.x_hat, self.inv_std = x_hat, inv_std
        return x_hat * self.weight.value + self.bias.value

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dy (N, D) -> dx (N, D); writes dweight = Σ_rows dy · x̂ and dbias = Σ_rows dy."""
        np.sum(grad_out * self.x_hat, axis=0, out=self.weight.grad)
        grad_out.sum(axis=0, out=self.bias.grad)
        g = grad_out * self.weight.value  # dL/dx̂
        if not self.training and self.axis == 0:  # eval: constant mean and var, x̂ is affine in x
            return g * self.inv_std
        return standardize_backward(g, self.x_hat, self.inv_std, self.axis)


class BatchNorm1d(Normalization):
    """Normalizes each feature over the batch in training, with the running estimates in eval.

    Training: mean and (biased) var of the batch, per feature; then the running estimates move
    toward them, ``running = (1 - momentum) · running + momentum · batch``, with the unbiased var
    ``var · N / (N - 1)`` for ``running_var``, as PyTorch does. Eval: ``running_mean`` and
    ``running_var`` in place of the batch's.
    """

    axis = 0
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 dtype: np.dtype = np.float32) -> None:
        super().__init__(num_features, eps, dtype)
        self.num_features, self.momentum = num_features, float(momentum)
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        self.num_batches_tracked = np.zeros((), dtype=np.int64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> y (N, D)."""
        self.check_input(x)
        if not self.training:
            inv_std = 1 / np.sqrt(self.running_var + self.eps)
            return self.scale_and_shift((x - self.running_mean) * inv_std, inv_std)
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"{self!r}: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}")
        mean = x.mean(axis=0)
        centered = x - mean
        var = (centered * centered).mean(axis=0)
        self.update_running_estimates(mean, var, n)
        inv_std = 1 / np.sqrt(var + self.eps)
        return self.scale_and_shift(centered * inv_std, inv_std)

    def update_running_estimates(self, mean: np.ndarray, var: np.ndarray, n: int) -> None:
        m = self.momentum
        self.running_mean[...] = (1 - m) * self.running_mean + m * mean
        self.running_var[...] = (1 - m) * self.running_var + m * (var * (n / (n - 1)))
        self.num_batches_tracked += 1

    def __repr__(self) -> str:
        return (f"BatchNorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                "affine=True, track_running_stats=True)")


class LayerNorm(Normalization):
    """Normalizes each example over its features, in training and eval alike."""

    axis = 1

    def __init__(self, normalized_shape: int | tuple[int], eps: float = 1e-5, *,
                 dtype: np.dtype = np.float32) -> None:
        features = normalized_shape if isinstance(normalized_shape, int) else (
            normalized_shape[0] if len(normalized_shape) == 1 else 0)
        super().__init__(features, eps, dtype)
        self.normalized_shape = (features,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> y (N, D)."""
        self.check_input(x)
        mean = x.mean(axis=1, keepdims=True)
        centered = x - mean
        inv_std = 1 / np.sqrt((centered * centered).mean(axis=1, keepdims=True) + self.eps)
        return self.scale_and_shift(centered * inv_std, inv_std)

    def __repr__(self) -> str:
        return f"LayerNorm({self.normalized_shape}, eps={self.eps}, elementwise_affine=True)"
