"""The pieces of the pattern-detector lesson: the correlation of weights with class means and
the picture of the templates."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image

from compare.lessons.pattern_detector import correlations, template_figures, templates_picture

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
