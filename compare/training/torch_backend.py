"""The torch twin behind the Backend interface: ``nn.Sequential`` and ``torch.optim`` on CPU or
CUDA.

The training set lives on the backend's device; losses are kept on the device, one slot per step,
and read back once per epoch, so a CUDA step never waits for the GPU.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling
from torch import nn

from compare.harness.twins import StateDict, torch_state_dict
from compare.layers import linear_weights
from compare.training import checkpoint
from compare.training.backend import (
    EVALUATION_ROWS,
    RATIO_FLOOR,
    VARIANCE_FLOOR,
    Evaluation,
    evaluation_mode,
    ratio_stride,
    segment_edges,
)
from compare.training.config import batch_bounds
from compare.training.optimizer_state import check_optimizer_state
from compare.training.optimizers import OptimizerSpec
from compare.training.torch_random import TorchGenerators
from torch_ref import logits_of


class TorchLoader:
    """The training set on ``device`` (on the CPU sharing the NumPy arrays' memory, on CUDA
    uploaded once); each batch is gathered into a buffer per batch size, valid until the next."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device) -> None:
        self.x = torch.from_numpy(x).to(device)
        self.y = torch.from_numpy(y).to(device)
        self.device = device
        self._buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def batches(self, order: np.ndarray, batch_size: int, first_step: int = 0
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rows = torch.from_numpy(order).to(self.device)
        for start, stop in batch_bounds(len(order), batch_size)[first_step:]:
            if stop - start not in self._buffers:
                self._buffers[stop - start] = (
                    torch.empty((stop - start, self.x.shape[1]), dtype=self.x.dtype,
                                device=self.device),
                    torch.empty(stop - start, dtype=self.y.dtype, device=self.device))
            x, y = self._buffers[stop - start]
            torch.index_select(self.x, 0, rows[start:stop], out=x)
            torch.index_select(self.y, 0, rows[start:stop], out=y)
            yield x, y


class WeightSamples:
    """The entries of each Linear weight (out, in) its update ratio is measured on, every s-th
    row and column (:func:`ratio_stride`), laid end to end in one buffer on the device: row 0
    as they were before a recorded step, row 1 after it; and the matrix that averages each
    weight's segment, so that one product gives every weight's moments (a few kernels for all
    the layers, never a synchronisation)."""

    def __init__(self, weights: list[torch.Tensor]) -> None:
        """``weights``: the Linear weights, which the optimizer updates in place (the samples
        are views of them)."""
        strides = [ratio_stride(tuple(w.shape)) for w in weights]
        self.sampled = [w.detach()[::s, ::s] for w, s in zip(weights, strides, strict=True)]
        shapes = [tuple(sample.shape) for sample in self.sampled]
        edges = segment_edges(shapes)
        options = {"dtype": weights[0].dtype, "device": weights[0].device}
        self.flat = torch.empty((2, edges[-1]), **options)
        self.views = [[self.flat[row, start:stop].view(shape) for start, stop, shape in
                       zip(edges, edges[1:], shapes, strict=False)] for row in (0, 1)]
        self.averaging = torch.zeros((edges[-1], len(weights)), **options)
        for column, (start, stop) in enumerate(itertools.pairwise(edges)):
            self.averaging[start:stop, column] = 1 / (stop - start)

    def take(self, row: int) -> None:
        """Copy the sampled entries of the weights into ``row`` (0: before, 1: after)."""
        for sample, view in zip(self.sampled, self.views[row], strict=True):
            view.copy_(sample)

    def log10_ratios(self) -> torch.Tensor:
        """(weights,): log10 of std(update) / std(weight) of each, from the entries taken
        before and after the step; variances as E[x²] - E[x]², exact enough where the mean is
        small against the spread (weights and their updates)."""
        self.flat[0].sub_(self.flat[1])  # minus the update: the same spread
        moments = torch.cat([self.flat, self.flat * self.flat]) @ self.averaging
        variance = moments[2:] - moments[:2] * moments[:2]  # (update, weight) x weights
        ratio = variance[0] / variance[1].clamp_min(VARIANCE_FLOOR)
        return ratio.clamp_min(RATIO_FLOOR**2).log10() / 2


class TorchBackend:
    """Trains ``model`` (ending in Softmax) with ``F.cross_entropy`` on its logits; without an
    ``optimizer`` it only evaluates. Its Dropout layers draw from generators of its own, seeded
    with ``seed`` (:mod:`compare.training.torch_random`)."""

    name = "torch"
    checkpoint_suffix = ".pt"

    def __init__(self, model: nn.Sequential, optimizer: OptimizerSpec | None = None,
                 seed: int = 0) -> None:
        self.model = model
        self.logits_model = logits_of(model)
        self.spec = optimizer
        self.optimizer = optimizer.build_torch(model.parameters()) if optimizer else None
        self.device = next(model.parameters()).device
        self.weights = linear_weights(model)
        self.samples = WeightSamples([p for _, p in self.weights])
        self.start_epoch(0)
        self.generators = TorchGenerators(self.device, seed, used=any(
            isinstance(layer, nn.Dropout) for layer in model.modules()))

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def loader(self, x: np.ndarray, y: np.ndarray) -> TorchLoader:
        return TorchLoader(x, y, self.device)

    def start_epoch(self, steps: int, norm_steps: Sequence[int] = (),
                    ratio_steps: Sequence[int] = ()) -> None:
        self._losses = torch.zeros(steps, dtype=torch.float64, device=self.device)
        self._norm_rows = {step: row for row, step in enumerate(norm_steps)}
        self._ratio_rows = {step: row for row, step in enumerate(ratio_steps)}
        self._norms = torch.zeros((len(norm_steps), len(self.weights)), dtype=torch.float64,
                                  device=self.device)
        self._ratios = torch.zeros((len(ratio_steps), len(self.weights)), dtype=torch.float64,
                                   device=self.device)
        self._step = 0

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One optimizer step on the batch x (B, features), y (B,)."""
        with self.generators:
            loss = F.cross_entropy(self.logits_model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        row = self._norm_rows.get(self._step)
        if row is not None:  # kept on the device: no synchronisation
            self._norms[row] = torch.stack(
                [torch.linalg.vector_norm(p.grad) for _, p in self.weights])
        row = self._ratio_rows.get(self._step)
        if row is None:
            self.optimizer.step()
        else:
            self.step_measuring_update(row)
        self._losses[self._step] = loss.detach()
        self._step += 1

    def step_measuring_update(self, row: int) -> None:
        """The optimizer's step, recording each weight's update ratio in ``row`` (kept on the
        device: no synchronisation)."""
        self.samples.take(0)
        self.optimizer.step()
        self.samples.take(1)
        self._ratios[row] = self.samples.log10_ratios()

    def step_losses(self) -> np.ndarray:
        """Read back from the device: on CUDA, the epoch's one synchronisation."""
        return self._losses[: self._step].cpu().numpy()

    def step_grad_norms(self) -> np.ndarray:
        return self._norms[: self.taken(self._norm_rows)].cpu().numpy()

    def step_update_ratios(self) -> np.ndarray:
        return self._ratios[: self.taken(self._ratio_rows)].cpu().numpy()

    def taken(self, rows: dict[int, int]) -> int:
        """How many of the epoch's steps in ``rows`` are taken."""
        return sum(step < self._step for step in rows)

    @torch.no_grad()
    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = EVALUATION_ROWS, *,
                 keep_outputs: bool = False) -> Evaluation:
        xs, ys = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        kept = []
        for start in range(0, len(y), batch_size):
            with evaluation_mode(self.model):
                outputs = self.layer_outputs(xs[start : start + batch_size])
            logits, target = outputs[-2], ys[start : start + batch_size]  # before the Softmax
            loss_sum += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(dim=1) == target).sum()
            kept += [[output.cpu().numpy() for output in outputs]] if keep_outputs else []
        return Evaluation(loss_sum.item() / len(y), correct.item() / len(y),
                          [np.concatenate(per_layer) for per_layer in zip(*kept, strict=True)])

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every layer for x, first layer first."""
        outputs = []
        for layer in self.model:
            x = layer(x)
            outputs.append(x)
        return outputs

    def state_dict(self) -> StateDict:
        return torch_state_dict(self.model)

    def grad_norms(self) -> dict[str, float]:
        return {name: float(torch.linalg.vector_norm(p.grad)) for name, p in self.weights}

    def save_checkpoint(self, path: Path, meta: dict, progress: dict[str, np.ndarray]) -> None:
        optimizer = self.optimizer.state_dict() if self.optimizer else None
        checkpoint.save_pt(path, self.model.state_dict(), meta, optimizer, progress,
                           self.generators.state_dict())

    def load_random_state(self, saved: dict[str, np.ndarray]) -> None:
        """Continue the Dropout layers' draws from torch's generator states ``saved``, checked
        first (ValueError)."""
        self.generators.load_state_dict(saved)

    def load_optimizer_state(self, state: dict, steps_taken: int) -> None:
        """``torch.optim``'s state_dict after ``steps_taken`` steps, checked tensor by tensor
        first (a bad one would crash the fused step: ValueError instead); the settings stay the
        run's."""
        trained = dict(self.model.named_parameters())  # the state dict holds buffers too
        parameters = [(array.shape, array.dtype) for name, array in self.state_dict().items()
                      if name in trained]
        checked = check_optimizer_state(state, self.name, self.spec, parameters, steps_taken)
        self.optimizer.load_state_dict(
            {"state": checked, "param_groups": self.optimizer.state_dict()["param_groups"]})
