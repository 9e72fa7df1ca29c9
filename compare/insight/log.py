"""One twin's insight logging: the pictures and curves TensorBoard shows of what happens inside
the network, under the same tags for both twins.

- ``Loss/train_step`` and ``GradNormStep/<layer>.weight``: every k-th step, k chosen for about
  ``POINTS_PER_EPOCH`` points an epoch, and ``UpdateRatio/<layer>.weight`` (log10 of
  std(update) / std(weight), the step's change against the weights) every ``RATIO_SPACING``
  k-th (recorded during the epoch, logged after it);
- ``Neurons/first_layer``, ``Neurons/learned_change`` and ``Neurons/top_digits``: the first
  layer's first ``NEURONS_SHOWN`` neurons, row by row in the same order in all three: each
  one's weights as a 28x28 tile (scaled by its own largest weight), its change since the
  initial weights (one color scale for the grid), and the ``TOP_DIGITS`` test digits of a fixed
  pool that excite it most (largest ``x . w``);
- ``DeadUnits/hidden<n>`` and ``Activations/hidden<n>``: per hidden activation layer (found by
  its kind in the layer table), the share of dead or saturated units on the validation set (or
  the first 1000 training images without one), as its kind defines them (no such tag for a kind
  whose units never are), and the distribution of the outputs for its first 500 images;
- ``Answers/probabilities``: the output probabilities for the first test digit of each class;
- at the end, ``Mistakes/confusion_matrix`` (headed by the test accuracy) and
  ``Mistakes/most_confident_wrong`` on the test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from compare.data import NUM_CLASSES, Splits
from compare.insight.images import (
    ProbabilityBars,
    captioned_digits,
    confusion_image,
    digit_mosaics,
    diverging_palette,
    gray_palette,
    neuron_tiles,
    png,
)
from compare.insight.tensorboard_writer import SummaryWriter
from compare.layers import LayerKind, kind_of


class Evaluated(Protocol):
    """What insight reads of an evaluation: every layer's outputs (N, width), first first."""

    outputs: list[np.ndarray]


class Twin(Protocol):
    """What insight reads of a twin (a training backend is one): its network, its weights by
    PyTorch's names, and an evaluation pass."""

    model: Any

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def evaluate(self, x: np.ndarray, y: np.ndarray, *, keep_outputs: bool = False
                 ) -> Evaluated: ...


POINTS_PER_EPOCH = 25
PROBE_ROWS = 1000
HISTOGRAM_ROWS = 500  # of the probe set: the activations' distribution, at a fraction of the cost
MISTAKES_SHOWN = 16
NEURONS_SHOWN, NEURONS_PER_ROW = 16, 4
"""The neuron grids: 16 neurons, 4 a row, one pixel a weight and one between tiles: 117 pixels,
which TensorBoard's image card (about 350 wide) scales 3x and draws pixelated (its images are
``image-rendering: pixelated``), each weight a sharp 3x3 square."""
CHANGE_FULL_COLOR_QUANTILE = 0.99
"""The learned change is full red or blue at this quantile of its |W - W0| over the grid (the
largest 1% clipped), so that a few large weights do not fade the rest."""
TOP_DIGITS, TOP_DIGIT_POOL = 9, 1000
"""Per neuron, the 9 digits (a 3x3 mosaic as wide as its tile) of the first 1000 test images
that excite it most: one (1000, pixels) x (pixels, 16) product an epoch, in the run's dtype (a
test set of fewer than 9 images shows the largest square number it has: 4 or 1)."""


RATIO_SPACING = 3
"""``UpdateRatio`` takes every third of those steps, about 8 points an epoch: measuring it (the
weights' samples copied before and after the step, their moments) is the costliest thing a
recorded step does, about 4% of a 10-epoch run on the MNIST subset at every k-th step."""


def log_every(steps_per_epoch: int) -> int:
    """k: per-step curves take every k-th step (it depends on the epoch's size alone, so a
    resumed run records the same steps as a straight one)."""
    return max(1, steps_per_epoch // POINTS_PER_EPOCH)


def ratio_every(every: int) -> int:
    """The interval of the ``UpdateRatio`` steps when the per-step curves take every ``every``-th
    step (0: none)."""
    return every * RATIO_SPACING


def recorded_steps(first_global_step: int, steps: int, every: int) -> list[int]:
    """Which of ``steps`` steps, the first of them global step ``first_global_step`` (1-based),
    are recorded: their 0-based positions."""
    return [i for i in range(steps) if (first_global_step + i) % every == 0] if every else []


def top_rows(values: np.ndarray, count: int) -> np.ndarray:
    """(count, columns): in each column of ``values`` (rows, columns), the rows of its ``count``
    largest values, largest first (a partition, then a sort of those alone)."""
    candidates = np.argpartition(-values, count - 1, axis=0)[:count]
    order = np.argsort(-np.take_along_axis(values, candidates, axis=0), axis=0, kind="stable")
    return np.take_along_axis(candidates, order, axis=0)


def hidden_activations(model: Any, evaluated: Evaluated) -> list[tuple[LayerKind, np.ndarray]]:
    """The hidden activation layers of ``model`` (of either twin), first first, each with its
    kind in the layer table and its outputs (N, units) in ``evaluated``."""
    kinds = [kind_of(layer) for layer in model]
    return [(kind, outputs) for kind, outputs in zip(kinds, evaluated.outputs, strict=True)
            if kind.activation]


def add_image(writer: SummaryWriter, tag: str, image: np.ndarray, step: int,
              palette: list[int] | None = None, compress_level: int = 1) -> None:
    writer.add_image(tag, png(image, palette, compress_level), image.shape[0], image.shape[1],
                     step)


@dataclass(frozen=True)
class InsightSource:
    """What the insight of a run is drawn from: its ``splits``, and its first layer's weights
    before training, ``initial_weight`` (neurons, pixels) in PyTorch's layout, from which
    ``Neurons/learned_change`` measures the change."""

    splits: Splits
    initial_weight: np.ndarray


class InsightLog:
    """Writes a twin's insight tags into its run folder's ``writer``."""

    def __init__(self, writer: SummaryWriter, source: InsightSource) -> None:
        self.writer = writer
        splits = source.splits
        self.initial = np.asarray(source.initial_weight[:NEURONS_SHOWN], dtype=np.float64)
        self.pool = splits.test_x[:TOP_DIGIT_POOL]  # in the run's dtype, as the twins compute
        self.top_digits = math.isqrt(min(TOP_DIGITS, len(self.pool))) ** 2  # a square mosaic
        has_validation = len(splits.val_y) > 0
        self.probe_x = splits.val_x if has_validation else splits.train_x[:PROBE_ROWS]
        self.probe_y = splits.val_y if has_validation else splits.train_y[:PROBE_ROWS]
        self.test_x, self.test_y = splits.test_x, splits.test_y
        self.mean, self.std = splits.mean, splits.std
        self.handful = np.array([np.flatnonzero(splits.test_y == label)[0]
                                 for label in np.unique(splits.test_y)])
        self.bars = ProbabilityBars(self.pixels(self.handful), splits.test_y[self.handful],
                                    classes=NUM_CLASSES)
        self.palette, self.grays = diverging_palette(), gray_palette()

    def start(self) -> None:
        self.writer.add_multiline_charts({
            "Gradient norm of each layer's weights, every k steps": r"GradNormStep/.*",
            "log10 std(update) / std(weight) of each layer, every k steps": r"UpdateRatio/.*"})

    def steps(self, names: list[str], global_steps: list[int], losses: np.ndarray,
              norms: np.ndarray) -> None:
        """The recorded steps' losses and weight-gradient norms (one row per step, one column
        per Linear layer, named ``names``)."""
        tags = ["Loss/train_step", *(f"GradNormStep/{name}" for name in names)]
        for step, loss, row in zip(global_steps, losses, norms, strict=True):
            self.writer.add_scalars(dict(zip(tags, [loss, *row], strict=True)), step)

    def update_ratios(self, names: list[str], global_steps: list[int], ratios: np.ndarray
                      ) -> None:
        """The update ratios of the steps ``global_steps`` (one row per step, one column per
        Linear layer, named ``names``)."""
        tags = [f"UpdateRatio/{name}" for name in names]
        for step, row in zip(global_steps, ratios, strict=True):
            self.writer.add_scalars(dict(zip(tags, row, strict=True)), step)

    def epoch(self, backend: Twin, epoch: int, validation: Evaluated | None) -> None:
        """The pictures of the network as it stands after ``epoch`` epochs (0: untrained);
        ``validation`` (with every layer's outputs) saves a pass over the validation set."""
        self.neurons(backend.state_dict()["0.weight"], epoch)
        if validation is None or not validation.outputs:
            validation = backend.evaluate(self.probe_x, self.probe_y, keep_outputs=True)
        for number, (kind, outputs) in enumerate(hidden_activations(backend.model, validation),
                                                 start=1):
            if kind.inactive is not None:
                self.writer.add_scalar(f"DeadUnits/hidden{number}",
                                       float(np.mean(kind.inactive(outputs))), epoch)
            self.writer.add_histogram(f"Activations/hidden{number}", outputs[:HISTOGRAM_ROWS],
                                      epoch)
        handful = backend.evaluate(self.test_x[self.handful], self.test_y[self.handful],
                                   keep_outputs=True)
        add_image(self.writer, "Answers/probabilities", self.bars(handful.outputs[-1]), epoch,
                  self.bars.palette)

    def neurons(self, weight: np.ndarray, epoch: int) -> None:
        """The first layer's shown neurons, from its ``weight`` (neurons, pixels): their
        weights, their change since the start and their top digits, when its inputs are a
        square image."""
        shown = np.asarray(weight[:NEURONS_SHOWN], dtype=np.float64)
        layout = {"count": NEURONS_SHOWN, "per_row": NEURONS_PER_ROW, "gutter": 1}
        tiles = neuron_tiles(shown, **layout)
        if tiles is None:
            return
        add_image(self.writer, "Neurons/first_layer", tiles, epoch, self.palette)
        change = shown - self.initial
        full_color = float(np.quantile(np.abs(change), CHANGE_FULL_COLOR_QUANTILE))
        add_image(self.writer, "Neurons/learned_change",
                  neuron_tiles(change, full_color=full_color, **layout), epoch, self.palette)
        # x . w of every pool image for every shown neuron (pool, neurons): the bias moves no rank
        excitation = self.pool @ shown.T.astype(self.pool.dtype)
        top = top_rows(excitation, self.top_digits).T
        digits = self.pixels(top.ravel()).reshape(*top.shape, -1)
        add_image(self.writer, "Neurons/top_digits", digit_mosaics(digits, NEURONS_PER_ROW),
                  epoch, self.grays, compress_level=0)  # digits compress slowly

    def final(self, writer: SummaryWriter, epoch: int, test: Evaluated) -> None:
        """The test set's confusion matrix under its accuracy, and the most confidently wrong
        digits."""
        probabilities = test.outputs[-1]
        predicted = probabilities.argmax(axis=1)
        classes = probabilities.shape[1]
        confusion = np.zeros((classes, classes), np.int64)
        np.add.at(confusion, (self.test_y, predicted), 1)
        right, total = int(np.trace(confusion)), len(predicted)
        headline = f"test accuracy {right / total:.2%} ({right:,} of {total:,})"
        add_image(writer, "Mistakes/confusion_matrix", confusion_image(confusion, headline),
                  epoch)
        wrong = np.flatnonzero(predicted != self.test_y)
        if len(wrong):
            confidence = probabilities[wrong, predicted[wrong]]
            shown = wrong[np.argsort(-confidence, kind="stable")[:MISTAKES_SHOWN]]
            captions = [f"{self.test_y[i]} read as {predicted[i]} "
                        f"({probabilities[i, predicted[i]]:.0%})" for i in shown]
            add_image(writer, "Mistakes/most_confident_wrong",
                      captioned_digits(self.pixels(shown), captions), epoch)

    def pixels(self, rows: np.ndarray) -> np.ndarray:
        """Test images ``rows`` back in [0, 1], for drawing."""
        return self.test_x[rows].astype(np.float64) * self.std + self.mean
