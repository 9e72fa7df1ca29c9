"""neuron-vs-layer: the tutorial's small problem, adding two numbers. One ReLU neuron cannot
(ReLU blocks every negative answer); a layer of ReLU neurons and a Linear output can."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import scratch
from compare.errors import InterruptionError
from compare.harness.twins import torch_twin
from compare.insight.tensorboard_writer import SummaryWriter
from compare.layers import ACTIVATIONS
from compare.lessons.base import Lesson, LessonContext, LessonReport, Row
from compare.training.config import EpochOrders, batch_bounds


def sums(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pairs (a, b) uniform in [-1, 1] and their sums (count, 1)."""
    pairs = rng.uniform(-1.0, 1.0, size=(count, 2))
    return pairs, pairs.sum(axis=1, keepdims=True)


def scratch_network(hidden: int, activation: str, rng: np.random.Generator
                    ) -> scratch.Sequential:
    """``Linear(2, 1), act`` for one neuron (hidden 0), else ``Linear(2, h), act, Linear(h, 1)``."""
    act = ACTIVATIONS[activation].scratch
    if hidden == 0:
        return scratch.Sequential(scratch.Linear(2, 1, rng=rng, dtype=np.float64), act())
    return scratch.Sequential(scratch.Linear(2, hidden, rng=rng, dtype=np.float64), act(),
                              scratch.Linear(hidden, 1, rng=rng, dtype=np.float64))


class RegressionTwin:
    """One twin's network trained on squared error with plain SGD."""

    def __init__(self, name: str, scratch_model: scratch.Sequential, lr: float) -> None:
        self.name = name
        if name == "scratch":
            self.model, self.loss = scratch_model, scratch.MSELoss()
            self.optimizer = scratch.SGD(scratch_model.parameters(), lr=lr)
        else:
            import torch

            self.model = torch_twin(scratch_model)
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.name == "scratch":
            self.loss.forward(self.model.forward(x), y)
            self.model.backward(self.loss.backward())
            self.optimizer.step()
            return
        import torch
        import torch.nn.functional as F  # noqa: N812 - PyTorch's own spelling

        loss = F.mse_loss(self.model(torch.from_numpy(x)), torch.from_numpy(y))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.name == "scratch":
            return self.model.forward(x)
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()


@dataclass(frozen=True)
class NeuronVsLayer(Lesson):
    name = "neuron-vs-layer"
    claim = ("one ReLU neuron cannot learn to add two numbers (ReLU blocks negative values); "
             "a layer of neurons can")
    neuron_activation: str = "relu"
    layer_width: int = 8
    train_pairs: int = 2000
    epochs: int = 40
    lr: float = 0.05
    batch_size: int = 32
    ratio: float = 10.0  # the layer's test error must be this many times smaller
    dtype = "float64"
    look_at = "SCALARS Loss/train and Loss/test of one-neuron and layer"
    uses_data = False  # the tutorial's own problem: a + b for a, b uniform in [-1, 1]

    def run(self, context: LessonContext) -> LessonReport:
        rng = np.random.default_rng([context.seed, 5])
        x, y = sums(rng, self.train_pairs)
        test_x, test_y = sums(rng, 1000)
        errors, rows = {}, []
        for label, hidden, activation in (("one-neuron", 0, self.neuron_activation),
                                          ("layer", self.layer_width, "relu")):
            predictions = {}
            for twin in context.backends:
                model = scratch_network(hidden, activation,
                                        np.random.default_rng([context.seed, 6]))
                predictions[twin] = self.train(RegressionTwin(twin, model, self.lr), (x, y),
                                               (test_x, test_y), context, label)
            errors[label] = {t: float(np.mean((p - test_y) ** 2)) for t, p in predictions.items()}
            negative = test_y[:, 0] < 0
            rows += [Row("test mean squared error", label, errors[label]),
                     Row("negative sums answered 0 (share)", label,
                         {t: float(np.mean(p[negative, 0] == 0)) for t, p in predictions.items()}),
                     Row("positive sums within 0.05 (share)", label,
                         {t: float(np.mean(np.abs(p - test_y)[~negative] < 0.05))
                          for t, p in predictions.items()})]
        holds = all(errors["layer"][t] * self.ratio <= errors["one-neuron"][t]
                    for t in errors["layer"])
        twin = next(iter(errors["layer"]))
        reason = (f"squared error on new pairs: {errors['one-neuron'][twin]:.4f} for one "
                  f"{self.neuron_activation} neuron, {errors['layer'][twin]:.6f} for "
                  f"{self.layer_width} ReLU neurons and a Linear output (the claim needs "
                  f"{self.ratio:g}x smaller)")
        return self.report(context, rows, holds, reason)

    def train(self, twin: RegressionTwin, train: tuple[np.ndarray, np.ndarray],
              test: tuple[np.ndarray, np.ndarray], context: LessonContext, label: str
              ) -> np.ndarray:
        """Minibatch SGD on ``train`` (pairs (N, 2), sums (N, 1)), the same seeded order for both
        twins; returns the predictions for ``test``'s pairs."""
        (x, y), (test_x, test_y) = train, test
        orders = EpochOrders(len(x), context.seed)
        with SummaryWriter(context.logdir / label / twin.name) as writer:
            for epoch in range(1, self.epochs + 1):
                order = orders.next()
                for start, stop in batch_bounds(len(x), self.batch_size):
                    twin.step(x[order[start:stop]], y[order[start:stop]])
                    if context.stop.requested:
                        raise InterruptionError(f"{twin.name} stopped by Ctrl-C in epoch {epoch}")
                writer.add_scalars({
                    "Loss/train": float(np.mean((twin.predict(x) - y) ** 2)),
                    "Loss/test": float(np.mean((twin.predict(test_x) - test_y) ** 2))}, epoch)
        context.log(f"  {label:<16} {twin.name:>7}: {self.epochs} epochs")
        return twin.predict(test_x)
