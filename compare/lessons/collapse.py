"""linear-collapse: Linear layers stacked with nothing between them are one Linear layer, so
depth buys nothing without an activation to bend the output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.harness.tolerance import FLOAT64_MAX_REL, errors
from compare.harness.twins import StateDict
from compare.lessons.base import (
    Lesson,
    LessonContext,
    LessonReport,
    Row,
    sgd_config,
    train_configuration,
)
from compare.training.build import evaluation_backend


def collapse(state: StateDict) -> tuple[np.ndarray, np.ndarray]:
    """The one Linear layer (weight (out, in), bias (out,)) that a stack of Linear layers with
    nothing between them computes: y = x·W1ᵀ + b1, z = y·W2ᵀ + b2 = x·(W2·W1)ᵀ + (W2·b1 + b2),
    and so on through the stack."""
    names = sorted({name.split(".")[0] for name in state}, key=int)
    weight, bias = state[f"{names[0]}.weight"], state[f"{names[0]}.bias"]
    for name in names[1:]:
        weight = state[f"{name}.weight"] @ weight
        bias = state[f"{name}.weight"] @ bias + state[f"{name}.bias"]
    return weight, bias


def collapse_error(backend_state: StateDict, logits: np.ndarray, x: np.ndarray) -> float:
    """max|stack - collapsed| / max|stack| over the logits of ``x``."""
    weight, bias = collapse(backend_state)
    return errors(x @ weight.T + bias, logits)[1]


@dataclass(frozen=True)
class LinearCollapse(Lesson):
    name = "linear-collapse"
    claim = ("stacked Linear layers without an activation collapse into one Linear layer "
             "(depth is useless without something to bend the output)")
    stack: str = "none"  # the activation between the stacked layers
    hidden: tuple[int, ...] = (128, 64)
    epochs: int = 10
    lr: float = 0.1
    gap: float = 0.02  # the ReLU network must beat both linear models by this much accuracy
    slack: float = 0.01  # the stack may test this much better than one layer by chance
    dtype = "float64"
    look_at = "SCALARS Accuracy/val of deep-stack, one-layer and relu"

    def run(self, context: LessonContext) -> LessonReport:
        configs = {"deep-stack": (self.hidden, self.stack), "one-layer": ((), "none"),
                   "relu": (self.hidden, "relu")}
        accuracy, rows, difference = {}, [], {}
        for label, (hidden, activation) in configs.items():
            config = sgd_config(context, hidden, activation, epochs=self.epochs, lr=self.lr,
                                dtype=self.dtype)
            outcomes = train_configuration(context, label, config)
            accuracy[label] = {t: o.test_accuracy for t, o in outcomes.items()}
            rows.append(Row("test accuracy", label, accuracy[label]))
            if label == "deep-stack":
                difference = self.collapse_errors(context)
                rows.insert(0, Row("stack vs its collapsed layer, max rel", label, difference,
                                   math=False))  # both at rounding level: no twin comparison
        holds = all(difference[t] <= FLOAT64_MAX_REL and
                    accuracy["deep-stack"][t] <= accuracy["one-layer"][t] + self.slack and
                    accuracy["relu"][t] >= max(accuracy["deep-stack"][t],
                                               accuracy["one-layer"][t]) + self.gap
                    for t in difference)
        twin = next(iter(difference))
        reason = (f"the trained {len(self.hidden) + 1}-layer stack equals one Linear layer to "
                  f"{difference[twin]:.1e} (limit {FLOAT64_MAX_REL:g}), tests "
                  f"{accuracy['deep-stack'][twin]:.3f} against {accuracy['one-layer'][twin]:.3f} "
                  f"for one layer, and ReLU reaches {accuracy['relu'][twin]:.3f} (the claim needs "
                  f"the stack no better than one layer, and ReLU {self.gap:g} better than both)")
        return self.report(context, rows, holds, reason)

    def collapse_errors(self, context: LessonContext) -> dict[str, float]:
        """Each twin's trained stack, read back from its checkpoint, against the single layer
        its weights multiply out to, on the test images."""
        from compare.training import checkpoint

        x = context.splits.test_x
        result = {}
        for twin in context.backends:
            saved = checkpoint.read(next((context.logdir / "deep-stack" / twin).glob(
                "checkpoint.*")))
            backend = evaluation_backend(checkpoint.network(saved, twin))
            logits = backend.evaluate(x, context.splits.test_y, keep_outputs=True).outputs[-2]
            result[twin] = collapse_error(saved.state, logits, x)
        return result
