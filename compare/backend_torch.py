"""The training step of the PyTorch twin: ``nn.Sequential`` and ``torch.optim`` on CPU or CUDA.

The training set lives on the backend's device; losses are kept on the device, one slot per step,
and read back once per epoch, so a CUDA step never waits for the GPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling
from torch import nn

from compare.optimizers import OptimizerSpec
from torch_ref import logits_of


class TorchBackend:
    """Trains ``model`` (ending in Softmax) with ``F.cross_entropy`` on its logits."""

    name = "torch"

    def __init__(
        self,
        model: nn.Sequential,
        optimizer: OptimizerSpec,
        train_x: np.ndarray,
        train_y: np.ndarray,
    ) -> None:
        self.model = model
        self.logits_model = logits_of(model)
        self.optimizer = optimizer.build_torch(model.parameters())
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        # On the CPU these share the NumPy arrays' memory; on CUDA they are uploaded once.
        self.train_x = torch.from_numpy(train_x).to(self.device)
        self.train_y = torch.from_numpy(train_y).to(self.device)
        self._batch: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._order = torch.arange(len(train_y), device=self.device)
        self._losses = torch.zeros(0, device=self.device)
        self._step = 0

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def start_epoch(self, order: np.ndarray, steps: int) -> None:
        """Take this epoch's sample order (N,) and make room for ``steps`` step losses."""
        self._order = torch.from_numpy(order).to(self.device)
        self._losses = torch.zeros(steps, dtype=torch.float64, device=self.device)
        self._step = 0

    def gather(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's batch: rows ``order[start:stop]`` gathered into a reused buffer."""
        size = stop - start
        if size not in self._batch:
            self._batch[size] = (
                torch.empty((size, self.train_x.shape[1]), dtype=self.dtype, device=self.device),
                torch.empty(size, dtype=torch.int64, device=self.device),
            )
        x, y = self._batch[size]
        rows = self._order[start:stop]
        torch.index_select(self.train_x, 0, rows, out=x)
        torch.index_select(self.train_y, 0, rows, out=y)
        return x, y

    def train_step(self, start: int, stop: int) -> None:
        """One optimizer step on the samples ``order[start:stop]``."""
        x, y = self.gather(start, stop)
        loss = F.cross_entropy(self.logits_model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self._losses[self._step] = loss.detach()
        self._step += 1

    def step_losses(self) -> np.ndarray:
        """The losses of this epoch's steps so far (float64); reads them back from the device."""
        return self._losses[: self._step].cpu().numpy()

    @torch.no_grad()
    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) over x (N, features), y (N,)."""
        xs = torch.from_numpy(x).to(self.device)
        ys = torch.from_numpy(y).to(self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, len(y), batch_size):
            logits = self.logits_model(xs[start : start + batch_size])
            target = ys[start : start + batch_size]
            loss_sum += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(dim=1) == target).sum()
        return loss_sum.item() / len(y), correct.item() / len(y)

    def weights(self) -> list[np.ndarray]:
        """Each Linear's weight transposed to (in, out) and bias (out,), as scratch holds them."""
        arrays = []
        for layer in self.model:
            if isinstance(layer, nn.Linear):
                arrays += [layer.weight.detach().cpu().numpy().T, layer.bias.detach().cpu().numpy()]
        return arrays

    def grad_norms(self) -> dict[str, float]:
        """L2 norm of the last step's weight gradient of each Linear, by layer index."""
        norms = {
            f"{i}.weight": torch.linalg.vector_norm(layer.weight.grad)
            for i, layer in enumerate(self.model)
            if isinstance(layer, nn.Linear)
        }
        return {name: float(norm) for name, norm in norms.items()}
