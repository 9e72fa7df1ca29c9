"""pattern-detector: the tutorials' first network, one Linear layer of 10 neurons on 784 pixels,
learns one template per digit: each neuron's weights, drawn as a 28x28 tile, look like its
digit. Measured: each tile correlates more with its own class's mean training image than with
any other class's."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from compare.data import NUM_CLASSES, Splits
from compare.insight.images import diverging_palette, neuron_tiles, png
from compare.lessons.base import (
    Lesson,
    LessonContext,
    LessonReport,
    Row,
    sgd_config,
    train_configuration,
)

TILE_SCALE = 4  # each pixel of a tile drawn 4x4: 112x112 tiles


def class_means(splits: Splits) -> np.ndarray:
    """The mean training image of each class, (classes, pixels)."""
    return np.stack([splits.train_x[splits.train_y == label].mean(axis=0)
                     for label in range(NUM_CLASSES)])


def correlations(weight: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Pearson correlation, over the pixels, of each neuron's weights (row i of ``weight``,
    (neurons, pixels)) with each class's mean image (row j of ``means``): (neurons, classes)."""
    def standardized(rows: np.ndarray) -> np.ndarray:
        centered = rows - rows.mean(axis=1, keepdims=True)
        return centered / np.linalg.norm(centered, axis=1, keepdims=True)

    return standardized(weight) @ standardized(means).T


def template_figures(weight: np.ndarray, means: np.ndarray) -> dict[str, float]:
    """How many neurons correlate best with their own class's mean image, the mean of those own
    correlations, and the smallest lead of the own class over the next best (negative when a
    neuron prefers another class)."""
    table = correlations(weight, means)
    own = np.diag(table)
    others = np.where(np.eye(len(table), dtype=bool), -np.inf, table).max(axis=1)
    return {"templates closest to their own class": int(np.sum(own > others)),
            "correlation with own class, mean": float(own.mean()),
            "smallest lead over the next class": float(np.min(own - others))}


def templates_picture(weight: np.ndarray, means: np.ndarray) -> bytes:
    """PNG of each neuron's weights beside its class's mean image (that image minus its own
    average pixel, as the correlation sees it): pairs 0-3 on the first row, 4-7 on the second,
    8-9 on the third; red positive, blue negative, each tile scaled by its largest value."""
    centered = means - means.mean(axis=1, keepdims=True)
    pairs = np.stack([weight, centered], axis=1).reshape(-1, weight.shape[1])
    tiles = neuron_tiles(pairs, count=len(pairs))
    return png(tiles.repeat(TILE_SCALE, axis=0).repeat(TILE_SCALE, axis=1), diverging_palette())


@dataclass(frozen=True)
class PatternDetector(Lesson):
    name = "pattern-detector"
    claim = ("a neuron is a pattern detector: one Linear layer of 10 neurons learns one template "
             "per digit, each neuron's weights looking like its digit")
    shuffle_labels: bool = False  # train on labels shuffled among the images: nothing to learn
    epochs: int = 30  # of full-batch gradient descent: one step each
    lr: float = 0.5
    least: int = 8  # of the 10 neurons, this many must correlate best with their own class
    dtype = "float64"
    look_at = "IMAGES Neurons/first_layer (the 10 tiles, epoch by epoch)"

    def run(self, context: LessonContext) -> LessonReport:
        splits, label = context.splits, "784-10"
        if self.shuffle_labels:
            order = np.random.default_rng([context.seed, 18]).permutation(len(splits.train_y))
            splits, label = replace(splits, train_y=splits.train_y[order]), "shuffled-labels"
        # Full-batch steps: each adds lr·mean_n((y_nc - p_nc)·x_n) to neuron c, the images of
        # class c less every image in proportion to the probability p_nc the network gives c;
        # minibatches would add their noise to the tiles.
        config = sgd_config(context, (), "none", lr=self.lr, epochs=self.epochs,
                            batch_size=len(splits.train_y), dtype=self.dtype)
        outcomes = train_configuration(context, label, config, splits)
        means = class_means(context.splits)  # of the true labels, whatever the network saw
        figures = {t: template_figures(o.state["0.weight"], means) for t, o in outcomes.items()}
        rows = [Row("test accuracy", label, {t: o.test_accuracy for t, o in outcomes.items()})]
        rows += [Row(name, label, {t: f[name] for t, f in figures.items()})
                 for name in next(iter(figures.values()))]
        count = "templates closest to their own class"
        holds = all(f[count] >= self.least for f in figures.values())
        twin = next(iter(figures))
        reason = (f"{figures[twin][count]} of the {NUM_CLASSES} neurons' weights correlate more "
                  f"with their own class's mean training image than with any other class's "
                  f"(the claim needs {self.least})")
        pictures = {f"templates-{t}.png": templates_picture(o.state["0.weight"], means)
                    for t, o in outcomes.items()}
        return self.report(context, rows, holds, reason, pictures)
