"""vanishing-gradients: in a deep stack, sigmoid starves the early layers of gradient; ReLU
keeps them learning."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compare.lessons.base import (
    Lesson,
    LessonContext,
    LessonReport,
    Outcome,
    Row,
    sgd_config,
    train_configuration,
)


def first_to_last_ratio(outcome: Outcome) -> float:
    """The mean, over the recorded steps of the first epoch, of |dL/dW| of the first Linear
    over that of the last: how much of the last layer's gradient reaches the first."""
    norms = outcome.history[0].grad_norms
    return float(np.mean(norms[:, 0] / norms[:, -1]))


@dataclass(frozen=True)
class VanishingGradients(Lesson):
    name = "vanishing-gradients"
    claim = "ReLU keeps early layers learning where sigmoid makes their gradients vanish"
    failing: str = "sigmoid"  # the activation whose early layers should starve
    working: str = "relu"
    depth: int = 8  # Linear layers
    width: int = 32
    epochs: int = 10  # enough for the ReLU stack to learn, and for the sigmoid one not to
    lr: float = 0.1  # at 0.2 and more the deep ReLU stack's training is chaotic: the twins'
    # float64 rounding differences grow until their accuracies differ in the second digit
    gap: float = 10.0  # the working ratio must be this many times the failing one
    dtype = "float64"
    look_at = "CUSTOM SCALARS (gradient norm of each layer), GradNormStep/*, DeadUnits/*"

    def run(self, context: LessonContext) -> LessonReport:
        ratios, rows = {}, []
        for activation in (self.failing, self.working):
            label, outcomes = self.train(context, activation)
            ratios[activation] = {t: first_to_last_ratio(o) for t, o in outcomes.items()}
            rows += self.rows(label, outcomes)
        failing, working = ratios[self.failing], ratios[self.working]
        holds = all(working[t] >= self.gap * failing[t] for t in failing)
        twin = next(iter(failing))
        reason = (f"at depth {self.depth} the first layer gets {failing[twin]:.1e} of the last "
                  f"layer's gradient with {self.failing} and {working[twin]:.1e} with "
                  f"{self.working} ({working[twin] / failing[twin]:.0f}x; the claim needs "
                  f"{self.gap:g}x)")
        return self.report(context, rows, holds, reason)

    def train(self, context: LessonContext, activation: str, norm: str = "none"
              ) -> tuple[str, dict[str, Outcome]]:
        """The deep stack (``depth`` Linear layers, ``width`` wide) with ``activation``, and
        ``norm`` after every hidden Linear, trained by each twin of the context: its label and
        the outcomes."""
        label = activation if norm == "none" else f"{activation}-{norm}norm"
        config = sgd_config(context, (self.width,) * (self.depth - 1), activation,
                            epochs=self.epochs, lr=self.lr, dtype=self.dtype,
                            layers={"norm": norm})
        return label, train_configuration(context, label, config)

    def rows(self, label: str, outcomes: dict[str, Outcome]) -> list[Row]:
        """The figures of one trained stack: how much gradient reaches its first layer, and
        what it has learnt."""
        return [Row("first / last layer grad norm, epoch 1", label,
                    {t: first_to_last_ratio(o) for t, o in outcomes.items()}),
                Row(f"test accuracy after {self.epochs} epochs", label,
                    {t: o.test_accuracy for t, o in outcomes.items()})]
