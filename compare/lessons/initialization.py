"""init: where the weights start decides whether a network can learn. Zeros make every hidden
neuron of a layer the same neuron, forever (they get the same gradient); a normal draw far too
wide drives a sigmoid network into its flat ends; PyTorch's default and Kaiming's scale learn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from compare.data import Splits
from compare.harness.tolerance import FLOAT64_MAX_REL
from compare.insight.images import diverging_palette, neuron_tiles, png
from compare.insight.log import hidden_activations
from compare.layers import kind_of
from compare.layers.activity import Saturation
from compare.lessons.base import (
    Lesson,
    LessonContext,
    LessonReport,
    Outcome,
    Row,
    sgd_config,
    train_configuration,
)
from compare.lessons.hyperparameters import HIDDEN
from compare.training.backend import Backend

NEURON_PICTURE = "first-layer-neurons.png"
"""In each twin's folder: its first layer's neurons as 28x28 images, as Neurons/first_layer."""
SPREAD = "neurons' largest weight difference / largest weight"
SATURATED = "saturated share of hidden outputs"


def linear_weights(backend: Backend) -> list[np.ndarray]:
    """Every Linear layer's weight (out, in), first first."""
    state = backend.state_dict()
    return [state[f"{index}.weight"] for index, layer in enumerate(backend.model)
            if kind_of(layer).name == "linear"]


def neuron_spread(weights: list[np.ndarray]) -> float:
    """The largest difference between two neurons' weights (rows) of any of the layers
    ``weights`` (out, in) each, over that layer's largest |weight|: 0 when each layer's neurons
    are all the same (0 for a layer of zeros)."""
    spreads = [float(np.max(w.max(axis=0) - w.min(axis=0)) / np.max(np.abs(w)))
               if np.any(w) else 0.0 for w in weights]
    return max(spreads)


def saturated_share(backend: Backend, splits: Splits) -> float:
    """The share of all the hidden activations' outputs on the validation images that lie at
    the flat ends of a bounded activation (:class:`Saturation`); 0 for an unbounded one."""
    evaluated = backend.evaluate(splits.val_x, splits.val_y, keep_outputs=True)
    near = [kind.inactive.near_bounds(outputs).ravel()
            for kind, outputs in hidden_activations(backend.model, evaluated)
            if isinstance(kind.inactive, Saturation)]
    return float(np.mean(np.concatenate(near))) if near else 0.0


def draw_neurons(backend: Backend, folder: Path) -> None:
    """The first layer's neurons as an image in ``folder`` (the twin's run folder), when its
    inputs are a square image."""
    tiles = neuron_tiles(linear_weights(backend)[0])
    if tiles is not None:
        (folder / NEURON_PICTURE).write_bytes(png(tiles, diverging_palette()))


def twins_agree(role: str, figure: str) -> bool:
    """Whether the twins' values of ``figure`` of the ``role`` configuration must agree in
    float64. Not the symmetric neurons' spread: 0 and rounding noise (1e-16), the verdict holds
    each to rounding. Nothing of the saturating run: in a sigmoid's flat ends 1 - σ(x) keeps few
    significant digits, so the twins' roundings part (past 1e-9 of the weights after about 150
    steps at std 3, as ``train --lockstep`` shows), and the verdict judges each twin."""
    return role != "saturating" and not (role == "symmetric" and figure == SPREAD)


@dataclass(frozen=True)
class Initialization(Lesson):
    name = "init"
    claim = ("zero initialization keeps every hidden neuron of a layer identical; a too-large "
             "normal init saturates a sigmoid network; PyTorch's default and Kaiming's learn")
    symmetric: str = "zeros"  # the init whose hidden neurons should stay identical
    saturating_std: float = 3.0  # the std of the normal init that should saturate
    learning: tuple[str, ...] = ("torch", "kaiming")  # the inits that should learn
    epochs: int = 5
    lr: float = 0.1
    saturated: float = 0.9  # "near 1": the share of saturated outputs the normal init must reach
    gap: float = 0.5  # in test accuracy: how far each learning init must beat the symmetric one
    activation: ClassVar[str] = "sigmoid"
    hidden: ClassVar[tuple[int, ...]] = HIDDEN
    dtype = "float64"
    look_at = (f"IMAGES Neurons/first_layer (also {NEURON_PICTURE} in each run folder), "
               "Activations/*, Accuracy/val")

    def run(self, context: LessonContext) -> LessonReport:
        configs = [("symmetric", self.symmetric, {}),
                   ("saturating", "normal", {"init_std": self.saturating_std}),
                   *((init, init, {}) for init in self.learning)]  # role, init, its settings
        figures, rows = {}, []
        for role, init, settings in configs:
            label = init + (f"-std-{self.saturating_std:g}" if settings else "")
            outcomes = train_configuration(context, label, sgd_config(
                context, self.hidden, self.activation, epochs=self.epochs, lr=self.lr,
                dtype=self.dtype, layers={"init": init, **settings}))
            figures[role] = {t: self.figures(o, context.splits) for t, o in outcomes.items()}
            rows += [Row(name, label, {t: f[name] for t, f in figures[role].items()},
                         math=twins_agree(role, name))
                     for name in next(iter(figures[role].values()))]
        return self.report(context, rows, *self.verdict(figures))

    @property
    def accuracy(self) -> str:
        return f"test accuracy after {self.epochs} epochs"

    def figures(self, outcome: Outcome, splits: Splits) -> dict[str, float]:
        """One trained network's figures; its first layer's neurons drawn in its folder."""
        draw_neurons(outcome.backend, outcome.folder)
        weights = linear_weights(outcome.backend)
        return {SPREAD: neuron_spread(weights[:-1]),  # the hidden layers' neurons
                SATURATED: saturated_share(outcome.backend, splits),
                self.accuracy: outcome.test_accuracy}

    def failures(self, figures: dict[str, dict[str, float]]) -> list[str]:
        """What one twin's figures (by role: symmetric, saturating, then the learning inits)
        break of the claim; empty when it holds."""
        symmetric, saturating = figures["symmetric"], figures["saturating"]
        failed = []
        if symmetric[SPREAD] > FLOAT64_MAX_REL:
            failed.append(f"{self.symmetric}'s neurons differ")
        if saturating[SATURATED] < self.saturated:
            failed.append(f"normal std {self.saturating_std:g} leaves the network unsaturated")
        failed += [f"{init} is not {self.gap:g} more accurate than {self.symmetric}"
                   for init in self.learning
                   if figures[init][self.accuracy] < symmetric[self.accuracy] + self.gap]
        return failed

    def verdict(self, figures: dict[str, dict[str, dict[str, float]]]) -> tuple[bool, str]:
        """Each twin: the symmetric init's hidden neurons equal to rounding (float64), the
        normal init's hidden outputs saturated, each learning init ``gap`` more accurate than
        the symmetric one. The reason describes the first twin that fails (else the first)."""
        failed = {t: self.failures({role: figures[role][t] for role in figures})
                  for t in figures["symmetric"]}
        twin = next((t for t, f in failed.items() if f), next(iter(failed)))
        symmetric, saturating = figures["symmetric"][twin], figures["saturating"][twin]
        learnt = " and ".join(f"{init} {figures[init][twin][self.accuracy]:.3f}"
                              for init in self.learning)
        reason = (f"({twin}) {self.symmetric}: the hidden neurons of a layer differ by "
                  f"{symmetric[SPREAD]:.1e} of its largest weight (limit {FLOAT64_MAX_REL:g}: "
                  f"one pattern repeated in {NEURON_PICTURE}), test accuracy "
                  f"{symmetric[self.accuracy]:.3f}; normal std {self.saturating_std:g}: "
                  f"{saturating[SATURATED]:.1%} of the hidden outputs saturated (the claim needs "
                  f"{self.saturated:.0%}); {learnt} (the claim needs {self.gap:g} more than "
                  f"{self.symmetric})")
        if failed[twin]:
            reason += f"; {twin}: " + "; ".join(failed[twin])
        return not any(failed.values()), reason
