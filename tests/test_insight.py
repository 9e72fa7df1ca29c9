"""Insight logging: the same pictures and curves from both twins, read back with TensorBoard's
own loader; dead and saturated units measured right on constructed cases."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import scratch
from compare import cli
from compare.insight.images import neuron_tiles
from compare.layers import ACTIVATIONS
from tests.helpers import events, train

IMAGES = {"Neurons/first_layer", "Answers/probabilities", "Mistakes/confusion_matrix",
          "Mistakes/most_confident_wrong"}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five epochs of both twins on the bundled MNIST sample (28x28 digits), float64."""
    logdir = tmp_path_factory.mktemp("runs")
    assert cli.main(["train", "--dataset", "mnist-sample", "--epochs", "5", "--dtype", "float64",
                     "--logdir", str(logdir), "--run-name", "run", "--json"]) == 0
    return logdir / "run"


def pixels(event: object) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string))).astype(int)


@pytest.mark.parametrize("twin", ["scratch", "torch"])
def test_every_insight_tag_is_written_and_read_back(sample_run: Path, twin: str) -> None:
    run = events(sample_run / twin)
    assert set(run.Tags()["images"]) == IMAGES
    scalars = set(run.Tags()["scalars"])
    assert {"Loss/train_step", "DeadUnits/hidden1", "DeadUnits/hidden2"} <= scalars
    assert {f"GradNormStep/{i}.weight" for i in (0, 2, 4)} <= scalars
    assert {"Activations/hidden1", "Activations/hidden2"} <= set(run.Tags()["histograms"])
    steps = [e.step for e in run.Scalars("Loss/train_step")]
    assert len(steps) >= 100 and steps == sorted(set(steps)), "a few hundred points, in order"
    assert [e.step for e in run.Images("Neurons/first_layer")] == list(range(6))
    assert [e.step for e in run.Images("Mistakes/confusion_matrix")] == [5]
    assert [e.step for e in run.Scalars("DeadUnits/hidden1")] == list(range(6))


def test_the_twins_draw_the_same_neurons(sample_run: Path) -> None:
    """Byte-identical PNGs at epoch 0 (the same weights); after five float64 epochs the twins'
    weights are within 1e-9 relative of each other, so a tile's palette index can differ by
    one, where rounding to the 255 shades falls on a boundary, and never more."""
    drawn = [events(sample_run / twin).Images("Neurons/first_layer") for twin in
             ("scratch", "torch")]
    assert drawn[0][0].encoded_image_string == drawn[1][0].encoded_image_string
    difference = np.abs(pixels(drawn[0][-1]) - pixels(drawn[1][-1]))
    assert difference.max() <= 1, (
        f"after training the images differ by up to {difference.max()} shades "
        f"({difference.mean():.2f} on average)")


def test_no_insight_logs_only_the_epoch_curves(data_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert train(data_dir, tmp_path, "--no-insight", capsys=capsys)[0] == 0
    run = events(tmp_path / "run" / "scratch")
    assert run.Tags()["images"] == []
    assert not [tag for tag in run.Tags()["scalars"] if tag.startswith(
        ("Loss/train_step", "GradNormStep", "DeadUnits"))]


def hidden_outputs(activation: str, bias: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """The first hidden layer's outputs for 500 random inputs, its weights times ``scale`` and
    its biases set to ``bias``."""
    rng = np.random.default_rng(0)
    model = scratch.mlp((20, 30, 10), ACTIVATIONS[activation].scratch, rng=rng,
                        dtype=np.float64)
    model[0].W[...] *= scale
    if bias:
        model[0].b[...] = bias
    return model[:2].forward(rng.standard_normal((500, 20)))


@pytest.mark.parametrize(("activation", "bias", "scale", "low", "high"), [
    ("relu", -1e3, 1.0, 1.0, 1.0),  # every unit shut: all dead
    ("relu", 0.0, 1.0, 0.0, 0.05),  # a fresh layer: a unit almost never is
    ("sigmoid", 0.0, 1.0, 0.0, 0.0),
    ("sigmoid", 0.0, 1e4, 1.0, 1.0),  # huge weights: every unit at 0 or 1
    ("tanh", 50.0, 1.0, 1.0, 1.0),
    ("tanh", 0.0, 1.0, 0.0, 0.0),
])
def test_dead_and_saturated_units_on_constructed_layers(activation: str, bias: float,
                                                        scale: float, low: float,
                                                        high: float) -> None:
    share = float(np.mean(ACTIVATIONS[activation].inactive(hidden_outputs(activation, bias,
                                                                          scale))))
    assert low <= share <= high, f"{activation}: {share:.3f} dead, expected [{low}, {high}]"


def test_neuron_tiles_show_sign_and_skip_non_square_inputs() -> None:
    weight = np.zeros((2, 16))
    weight[0, 0], weight[1, 5] = 1.0, -0.5
    tiles = neuron_tiles(weight)
    assert tiles[2, 2] == 254 and tiles[3, 9] == 0, "+max red, -max blue"
    assert tiles[3, 2] == 127, "zero is the neutral middle"
    assert neuron_tiles(np.zeros((3, 15))) is None
