"""Losses with PyTorch's ``reduction="mean"``: ``forward`` is the loss, ``backward`` dL/dinput."""

from __future__ import annotations

import numpy as np


class CrossEntropyLoss:
    """Softmax cross-entropy from logits, as ``torch.nn.CrossEntropyLoss``.

    ``loss = mean_i(logsumexp(z_i) - z_i[t_i])`` for logits z (N, C) and class indices t (N,);
    ``dL/dz = (softmax(z) - onehot(t)) / N``. The log-sum-exp subtracts each row's maximum first,
    so no exponent overflows.
    """

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float:
        n, classes = logits.shape
        if target.shape != (n,):
            raise ValueError(f"CrossEntropyLoss: target must have shape ({n},), got {target.shape}")
        if n and (target.min() < 0 or target.max() >= classes):
            raise ValueError(
                f"CrossEntropyLoss: targets must lie in [0, {classes}), got "
                f"[{target.min()}, {target.max()}]"
            )
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_sum_exp = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_prob = shifted - log_sum_exp  # log softmax, (N, C)
        rows = np.arange(n)
        self._log_prob, self._rows, self._target = log_prob, rows, target
        return float(-log_prob[rows, target].sum() / n)  # the mean over the batch

    def backward(self) -> np.ndarray:
        """dL/dlogits, shape (N, C)."""
        grad = np.exp(self._log_prob)
        grad[self._rows, self._target] -= 1
        grad /= len(self._target)
        return grad

    def __call__(self, logits: np.ndarray, target: np.ndarray) -> float:
        return self.forward(logits, target)


class MSELoss:
    """``mean((pred - target)²)`` over all elements; ``dL/dpred = 2 (pred - target) / numel``."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        if pred.shape != target.shape:
            raise ValueError(f"MSELoss: pred {pred.shape} and target {target.shape} differ")
        self._diff = pred - target
        return float(np.mean(self._diff * self._diff))

    def backward(self) -> np.ndarray:
        return self._diff * (2 / self._diff.size)

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)
