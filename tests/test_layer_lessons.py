"""The lessons of dropout, initialization and batch norm beyond what tests/test_lessons.py checks of
every lesson: the init verdict turns under each of its swaps, the zero-initialized network's
neuron picture shows one pattern repeated, and the figures the verdict reads are measured right on
constructed cases."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compare.data import SAMPLE, load_splits
from compare.harness.arch import Architecture
from compare.insight.images import TILES_PER_ROW
from compare.layers import ACTIVATIONS
from compare.lessons.base import DOES_NOT_HOLD, Lesson, LessonContext, LessonReport
from compare.lessons.initialization import (
    NEURON_PICTURE,
    Initialization,
    neuron_spread,
    saturated_share,
)
from compare.training.build import evaluation_backend
from compare.training.interrupt import StopRequest

SIDE, GUTTER = 28, 2  # a neuron's tile and the ground between tiles (images.tile_grid)


@pytest.fixture(scope="module")
def sample() -> object:
    return load_splits(Path("."), SAMPLE, dtype=np.float64)


def scratch_lesson(lesson: Lesson, sample: object, logdir: Path) -> LessonReport:
    with StopRequest() as stop:
        return lesson.run(LessonContext(lesson.name, ["scratch"], sample, SAMPLE, logdir, 0,
                                        stop, log=lambda line: None))


@pytest.mark.parametrize("swap", [
    {"saturating_std": 0.01},  # a normal init of a sensible size: nothing saturates
    {"learning": ("zeros",)},  # zeros where an init that learns should be
])
def test_the_init_verdict_turns_under_each_swap(swap: dict, sample: object,
                                                tmp_path: Path) -> None:
    report = scratch_lesson(dataclasses.replace(Initialization(), **swap), sample, tmp_path)
    assert report.verdict == DOES_NOT_HOLD, f"init with {swap}: {report.reason}"


def neuron_images(path: Path) -> np.ndarray:
    """The tiles (neurons, 28, 28) of a neuron picture, as palette indices."""
    grid = np.asarray(Image.open(path))
    rows = (grid.shape[0] - GUTTER) // (SIDE + GUTTER)
    return np.stack([grid[GUTTER + r * (SIDE + GUTTER):][:SIDE,
                          GUTTER + c * (SIDE + GUTTER):][:, :SIDE]
                     for r in range(rows) for c in range(TILES_PER_ROW)])


def test_zero_init_draws_one_pattern_repeated(sample: object, tmp_path: Path) -> None:
    """After an epoch from zeros, the first layer's 64 drawn neurons are one pattern (not a
    blank: sigmoid(0) = 1/2 passes gradient); from Kaiming's draw, 64 different ones."""
    scratch_lesson(dataclasses.replace(Initialization(), epochs=1), sample, tmp_path)
    zeros = neuron_images(tmp_path / "zeros" / "scratch" / NEURON_PICTURE)
    kaiming = neuron_images(tmp_path / "kaiming" / "scratch" / NEURON_PICTURE)
    assert len(zeros) == len(kaiming) == 64
    assert np.array_equal(zeros, np.broadcast_to(zeros[0], zeros.shape)), (
        "the zero-initialized neurons are drawn differently")
    assert len(np.unique(zeros[0])) > 10, "the zero-initialized neurons are drawn blank"
    assert len({tile.tobytes() for tile in kaiming}) == 64, "Kaiming's neurons look alike"


def test_neuron_spread_is_the_largest_difference_between_two_neurons() -> None:
    rng = np.random.default_rng(0)
    row = rng.normal(size=5)
    same = np.tile(row, (4, 1))
    assert neuron_spread([same, np.zeros((3, 5))]) == 0.0
    moved = same.copy()
    moved[2, 3] += 0.5
    expected = 0.5 / np.abs(moved).max()
    assert neuron_spread([same, moved]) == pytest.approx(expected, rel=1e-15, abs=0), (
        "float64: one weight moved by 0.5, relative to the layer's largest")


def test_saturated_share_counts_outputs_at_the_flat_ends(sample: object) -> None:
    """Sigmoid outputs within 0.01 of 0 or 1: none for a network of zeros (every output 1/2),
    nearly all for weights of std 100 (pre-activations of a few thousand)."""
    saturation = ACTIVATIONS["sigmoid"].inactive
    outputs = np.array([[0.005, 0.5, 0.995], [0.02, 0.999, 0.0]])
    assert saturation.near_bounds(outputs).tolist() == [[True, False, True],
                                                        [False, True, True]]
    shares = {}
    for init, std in (("zeros", None), ("normal", 100.0)):
        arch = Architecture((784, 16, 16, 10), "sigmoid", init=init, init_std=std)
        backend = evaluation_backend(arch.build_scratch(seed=0, dtype="float64"))
        shares[init] = saturated_share(backend, sample)
    assert shares["zeros"] == 0.0 and shares["normal"] > 0.97, shares
