"""The pieces of the pattern-detector and straight-line lessons: the correlation of weights with
class means, the principal plane, the decision-region picture, one thread for tiny networks,
and a straight-line run that diverges."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from threadpoolctl import threadpool_info

from compare.data import SAMPLE, load_splits
from compare.errors import CheckError
from compare.lessons.base import LessonContext
from compare.lessons.pattern_detector import correlations, template_figures, templates_picture
from compare.lessons.regions import (
    EXTENT,
    POINT_COLORS,
    REGION_COLORS,
    SIDE,
    panel,
    plane_grid,
    regions_image,
)
from compare.lessons.straight_line import Plane, StraightLine
from compare.training.threads import one_thread

FLOAT64 = "float64, compared to 1e-12"


def test_correlations_are_pearson_over_the_pixels() -> None:
    rng = np.random.default_rng(0)
    weight, means = rng.standard_normal((4, 30)), rng.standard_normal((3, 30)) + 2.0
    expected = np.corrcoef(weight, means)[:4, 4:]
    np.testing.assert_allclose(correlations(weight, means), expected, rtol=0, atol=1e-12,
                               err_msg=FLOAT64)


def test_template_figures_count_the_neurons_closest_to_their_own_class() -> None:
    rng = np.random.default_rng(1)
    means = rng.standard_normal((10, 49))
    own = template_figures(means + 0.1 * rng.standard_normal(means.shape), means)
    assert own["templates closest to their own class"] == 10
    assert own["smallest lead over the next class"] > 0
    shifted = template_figures(np.roll(means, 1, axis=0), means)  # neuron c holds class c-1
    assert shifted["templates closest to their own class"] == 0
    assert shifted["smallest lead over the next class"] < 0


def test_the_templates_picture_pairs_each_neuron_with_its_class_mean() -> None:
    means = np.random.default_rng(2).standard_normal((10, 784))
    picture = PIL.Image.open(io.BytesIO(templates_picture(means, means)))
    assert picture.width >= 8 * 28 * 4 and picture.height >= 3 * 28 * 4, picture.size


def anisotropic_points(rng: np.random.Generator, count: int = 400) -> tuple[np.ndarray, ...]:
    """Points (count, 12) spread 5 and 3 along two known orthonormal directions, 1 along the
    others, around a center of 7; and those two directions (2, 12)."""
    rotation, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    spread = np.array([5.0, 3.0] + [1.0] * 10)
    return 7.0 + (rng.standard_normal((count, 12)) * spread) @ rotation.T, rotation[:, :2].T


def test_the_plane_is_the_first_two_principal_components_standardized() -> None:
    x, directions = anisotropic_points(np.random.default_rng(3))
    plane = Plane.fit(x)
    points = plane(x)
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=1e-12, err_msg=FLOAT64)
    np.testing.assert_allclose(points.std(axis=0), 1.0, rtol=1e-12, err_msg=FLOAT64)
    np.testing.assert_allclose(plane.components @ plane.components.T, np.eye(2), atol=1e-12,
                               err_msg=FLOAT64)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x.T, bias=True))
    top = eigenvectors[:, ::-1][:, :2].T  # largest variance first
    np.testing.assert_allclose(np.abs(np.sum(top * plane.components, axis=1)), 1.0, rtol=1e-9,
                               err_msg="float64: the components are the covariance's top two "
                                       "eigenvectors, to 1e-9")
    assert abs(plane.variance_kept - eigenvalues[-2:].sum() / eigenvalues.sum()) < 1e-12
    assert np.all(np.abs(np.sum(directions * plane.components, axis=1)) > 0.9), (
        "the plane missed the two directions the points spread along")


def test_the_plane_s_orientation_does_not_depend_on_the_order_of_the_images() -> None:
    x, _ = anisotropic_points(np.random.default_rng(4))
    first, second = Plane.fit(x), Plane.fit(x[::-1])
    largest = np.abs(first.components).argmax(axis=1)
    assert np.all(first.components[np.arange(2), largest] > 0)
    np.testing.assert_allclose(first.components, second.components, atol=1e-12, err_msg=FLOAT64)


def test_the_grid_runs_row_by_row_from_the_top_left() -> None:
    grid = plane_grid(4)
    half = EXTENT / 4
    np.testing.assert_allclose(grid[0], [-EXTENT + half, EXTENT - half])  # top left
    np.testing.assert_allclose(grid[3], [EXTENT - half, EXTENT - half])  # top right
    np.testing.assert_allclose(grid[-1], [EXTENT - half, -EXTENT + half])  # bottom right


def test_a_panel_shades_the_answers_and_dots_the_points_where_they_lie() -> None:
    answers = (plane_grid()[:, 0] > 0).astype(np.int64)  # class 1 on the right half
    points = np.array([[-EXTENT + 0.01, EXTENT - 0.01], [0.5 * EXTENT, -0.5 * EXTENT],
                       [10 * EXTENT, 0.0]])  # top left, lower right, off the plane
    image = panel(answers, points, np.array([1, 0, 1]))
    assert image.shape == (SIDE, SIDE, 3)
    assert tuple(image[0, 0]) == tuple(POINT_COLORS[1])
    assert tuple(image[3 * SIDE // 4, 3 * SIDE // 4]) == tuple(POINT_COLORS[0])
    assert tuple(image[SIDE // 2, 5]) == tuple(REGION_COLORS[0])
    assert tuple(image[SIDE // 2, SIDE - 5]) == tuple(REGION_COLORS[1])
    assert np.sum(np.all(image == POINT_COLORS[1], axis=2)) == 4, "one 2x2 dot of class 1"
    both = regions_image({"a": answers, "b": 1 - answers}, points[:1], np.array([0]), "legend")
    assert both.shape[1] > 2 * SIDE and both.shape[0] > SIDE


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_one_thread_holds_both_libraries_to_one_and_gives_them_back() -> None:
    import torch

    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
        assert set(blas_threads()) <= {1}
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before


def test_a_straight_line_run_that_diverges_stops_without_a_verdict(tmp_path: Path) -> None:
    splits = load_splits(Path("."), SAMPLE, dtype=np.float64)
    lesson = dataclasses.replace(StraightLine(), lr=1e200, steps=20)
    expected = r"lesson straight-line: \S+ \(scratch\) diverged at step \d+; no verdict"
    with np.errstate(all="ignore"), pytest.raises(CheckError, match=expected):
        lesson.run(LessonContext("straight-line", ["scratch"], splits, SAMPLE, tmp_path, 0,
                                 log=lambda line: None))
