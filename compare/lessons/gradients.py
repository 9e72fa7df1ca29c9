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
            config = sgd_config(context, (self.width,) * (self.depth - 1), activation,
                                epochs=self.epochs, lr=self.lr, dtype=self.dtype)
            outcomes = train_configuration(context, activation, config)
            ratios[activation] = {t: first_to_last_ratio(o) for t, o in outcomes.items()}
            rows += [Row("first / last layer grad norm, epoch 1", activation, ratios[activation]),
                     Row(f"test accuracy after {self.epochs} epochs", activation,
                         {t: o.test_accuracy for t, o in outcomes.items()})]
        failing, working = ratios[self.failing], ratios[self.working]
        holds = all(working[t] >= self.gap * failing[t] for t in failing)
        twin = next(iter(failing))
        reason = (f"at depth {self.depth} the first layer gets {failing[twin]:.1e} of the last "
                  f"layer's gradient with {self.failing} and {working[twin]:.1e} with "
                  f"{self.working} ({working[twin] / failing[twin]:.0f}x; the claim needs "
                  f"{self.gap:g}x)")
        return self.report(context, rows, holds, reason)
