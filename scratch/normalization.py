"""Batch and layer normalization, forward and backward by hand.

Both standardize ``x`` (N, D) and then scale and shift it with learned ``weight`` (gamma) and
``bias`` (beta), each (D,):

    x̂ = (x - mean) / sqrt(var + eps)        y = weight · x̂ + bias

Batch norm takes mean and var over the batch (axis 0, one pair per feature); layer norm over
the features (axis 1, one pair per example); var is the biased one, Σ(x - mean)² / m over the
m values. Their backward passes share one formula: for a standardization over ``m`` values
along an axis, with ``g = dL/dx̂ = dy · weight``,

    dx = (g - mean(g) - x̂ · mean(g · x̂)) / sqrt(var + eps)          (means along that axis)

which is the whole chain through mean and var written out at once; and, for both,

    dweight = Σ_rows dy · x̂        dbias = Σ_rows dy

Batch norm in eval mode uses the running estimates instead, constants: ``dx = g / sqrt(var +
eps)``.
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
        self.x_hat: np.ndarray | None = None

    def check_input(self, x: np.ndarray) -> None:
        features = self.weight.value.shape[0]
        if x.ndim != 2 or x.shape[1] != features:
            raise ValueError(f"{self!r} expects input of shape (N, {features}), got {x.shape}")
        if x.dtype != self.weight.value.dtype:
            raise TypeError(f"{self!r} holds {self.weight.value.dtype} weights but got {x.dtype} "
                            "input")

    def scale_and_shift(self, x_hat: np.ndarray, inv_std: np.ndarray, axis: int | None
                        ) -> np.ndarray:
        """Keeps x̂, 1/sqrt(var + eps) and the axis mean and var came from (None: constants, the
        running estimates) for backward; returns ``weight · x̂ + bias``."""
        self.x_hat, self.inv_std, self.stats_axis = x_hat, inv_std, axis
        return x_hat * self.weight.value + self.bias.value

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dy (N, D) -> dx (N, D); writes dweight = Σ_rows dy · x̂ and dbias = Σ_rows dy."""
        if self.x_hat is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        np.sum(grad_out * self.x_hat, axis=0, out=self.weight.grad)
        grad_out.sum(axis=0, out=self.bias.grad)
        g = grad_out * self.weight.value  # dL/dx̂
        if self.stats_axis is None:  # constant mean and var: x̂ is affine in x
            return g * self.inv_std
        return standardize_backward(g, self.x_hat, self.inv_std, self.stats_axis)


class BatchNorm1d(Normalization):
    """Normalizes each feature over the batch in training, with the running estimates in eval.

    Training: mean and var of the batch, per feature (var biased: Σ(x - mean)² / N); then the
    running estimates move toward them, as PyTorch moves them:

        running_mean = (1 - momentum) · running_mean + momentum · mean
        running_var  = (1 - momentum) · running_var  + momentum · Σ(x - mean)² / (N - 1)

    (the unbiased var: an estimate of the variance of all the data, not of this batch), and
    ``num_batches_tracked`` counts the batches. With ``momentum=None`` the running estimates are
    the plain average over all batches so far: momentum is 1 / num_batches_tracked.
    Eval: ``running_mean`` and ``running_var`` in place of the batch's, unchanged.
    """

    axis = 0
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, *,
                 dtype: np.dtype = np.float32) -> None:
        super().__init__(num_features, eps, dtype)
        self.num_features = num_features
        self.momentum = None if momentum is None else float(momentum)
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        self.num_batches_tracked = np.zeros((), dtype=np.int64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> y (N, D)."""
        self.check_input(x)
        if not self.training:
            inv_std = 1 / np.sqrt(self.running_var + self.eps)
            return self.scale_and_shift((x - self.running_mean) * inv_std, inv_std, None)
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"{self!r}: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}")
        mean = x.mean(axis=0)
        centered = x - mean
        squares = (centered * centered).sum(axis=0)  # Σ (x - mean)², per feature
        self.update_running_estimates(mean, squares / (n - 1))
        inv_std = 1 / np.sqrt(squares / n + self.eps)
        return self.scale_and_shift(centered * inv_std, inv_std, self.axis)

    def update_running_estimates(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        self.num_batches_tracked += 1
        m = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean[...] = (1 - m) * self.running_mean + m * mean
        self.running_var[...] = (1 - m) * self.running_var + m * unbiased_var

    def __repr__(self) -> str:
        return (f"BatchNorm1d({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                "affine=True, bias=True, track_running_stats=True)")


class LayerNorm(Normalization):
    """Normalizes each example over its features, in training and eval alike."""

    axis = 1

    def __init__(self, normalized_shape: int | tuple[int], eps: float = 1e-5, *,
                 dtype: np.dtype = np.float32) -> None:
        features = normalized_shape
        if isinstance(normalized_shape, tuple | list):
            if len(normalized_shape) != 1:
                raise ValueError(f"LayerNorm normalizes the last axis of (N, D) input: "
                                 f"normalized_shape must be D or (D,), got {normalized_shape!r}")
            features = normalized_shape[0]
        super().__init__(features, eps, dtype)
        self.normalized_shape = (features,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> y (N, D)."""
        self.check_input(x)
        mean = x.mean(axis=1, keepdims=True)
        centered = x - mean
        inv_std = 1 / np.sqrt((centered * centered).mean(axis=1, keepdims=True) + self.eps)
        return self.scale_and_shift(centered * inv_std, inv_std, self.axis)

    def __repr__(self) -> str:
        return (f"LayerNorm({self.normalized_shape}, eps={self.eps}, elementwise_affine=True, "
                "bias=True)")
