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
from compare.harness.arch import Architecture
from compare.insight.images import neuron_tiles
from compare.insight.log import top_rows
from compare.layers import ACTIVATIONS
from compare.training.build import build_backend
from compare.training.config import TrainConfig
from compare.training.optimizers import OptimizerSpec
from tests.helpers import IMAGE_SIDE, events, learnable_images, train, write_dataset

NEURONS = ("Neurons/first_layer", "Neurons/learned_change", "Neurons/top_digits")
IMAGES = {*NEURONS, "Answers/probabilities", "Mistakes/confusion_matrix",
          "Mistakes/most_confident_wrong"}
CARD_WIDTH = 350
"""TensorBoard's image card is about 350 pixels wide (TensorBoard 2.21 in Chromium) and draws an
image to its width, pixelated: an image of about that width is shown at its own size (digits,
text), one of about a third of it 3x, each pixel a sharp 3x3 square (the neuron tiles)."""


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
    assert {f"{tag}/{i}.weight" for tag in ("GradNormStep", "UpdateRatio") for i in (0, 2, 4)
            } <= scalars
    assert {"Activations/hidden1", "Activations/hidden2"} <= set(run.Tags()["histograms"])
    steps = [e.step for e in run.Scalars("Loss/train_step")]
    assert len(steps) >= 100 and steps == sorted(set(steps)), "a few hundred points, in order"
    for tag in NEURONS:
        assert [e.step for e in run.Images(tag)] == list(range(6)), tag
    assert [e.step for e in run.Images("Mistakes/confusion_matrix")] == [5]
    assert [e.step for e in run.Scalars("DeadUnits/hidden1")] == list(range(6))


def drawn_by_twins(run: Path, tag: str) -> list[list[object]]:
    """The images of ``tag`` of the run's scratch twin and of its torch twin, step by step."""
    return [events(run / twin).Images(tag) for twin in ("scratch", "torch")]


@pytest.mark.parametrize("tag", [*NEURONS, "Answers/probabilities"])
def test_the_twins_draw_the_same_neurons(sample_run: Path, tag: str) -> None:
    """Byte-identical PNGs at epoch 0 (the same weights); after five float64 epochs the twins'
    weights are within 1e-9 relative of each other, so a tile's palette index can differ by
    one, where rounding to the 255 shades falls on a boundary, and never more, and no neuron's
    top digits change (two excitations would have to be within 1e-9 of each other)."""
    scratch_drawn, torch_drawn = drawn_by_twins(sample_run, tag)
    assert scratch_drawn[0].encoded_image_string == torch_drawn[0].encoded_image_string
    difference = np.abs(pixels(scratch_drawn[-1]) - pixels(torch_drawn[-1]))
    limit = 0 if tag == "Neurons/top_digits" else 1
    assert difference.max() <= limit, (
        f"{tag}: after training the images differ by up to {difference.max()} shades in "
        f"{np.count_nonzero(difference)} pixels (float64)")


def test_the_learned_change_starts_blank_and_fits_the_card(sample_run: Path) -> None:
    """At epoch 0 every tile of the learned change is the neutral white (palette index 127,
    the gutters 255): W0 is the twins' own initial weights. The digits and the confusion matrix
    fit TensorBoard's image card, which shows them unscaled, and the tiles a third of it (3x)."""
    for changes in drawn_by_twins(sample_run, "Neurons/learned_change"):
        assert set(np.unique(pixels(changes[0]))) == {127, 255}
        assert len(np.unique(pixels(changes[-1]))) > 100, "after training the change shows"
    run = events(sample_run / "scratch")
    for tag, scale in [("Neurons/first_layer", 3), ("Neurons/learned_change", 3),
                       ("Neurons/top_digits", 1), ("Mistakes/confusion_matrix", 1)]:
        width = run.Images(tag)[-1].width * scale  # 3x: a pixel or two over the card is 2.99x
        assert CARD_WIDTH - 30 <= width <= CARD_WIDTH + scale - 1, f"{tag}: {width} at {scale}x"


def test_float32_twins_draw_byte_identical_pictures_at_epoch_0(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train(data_dir, tmp_path, "--dtype", "float32", "--epochs", "1", capsys=capsys)[0] == 0
    for tag in [*NEURONS, "Answers/probabilities"]:
        scratch_drawn, torch_drawn = drawn_by_twins(tmp_path / "run", tag)
        assert scratch_drawn[0].encoded_image_string == torch_drawn[0].encoded_image_string, tag
    for changes in drawn_by_twins(tmp_path / "run", "Neurons/learned_change"):
        assert set(np.unique(pixels(changes[0]))) == {127, 255}, "float32: W0 is the start"


def test_a_resumed_run_measures_the_change_from_the_first_weights(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """W0 is drawn again from the seed on --resume: the learned change of a run resumed after
    its first epoch is byte for byte the straight run's (measured from the checkpoint's
    weights instead, epoch 2's would differ)."""
    assert train(data_dir, tmp_path / "straight", capsys=capsys)[0] == 0
    assert train(data_dir, tmp_path / "resumed", "--epochs", "1", capsys=capsys)[0] == 0
    assert cli.main(["train", "--resume", str(tmp_path / "resumed" / "run"), "--epochs", "2"]
                    ) == 0
    for twin in ("scratch", "torch"):
        straight, resumed = (
            {e.step: e.encoded_image_string for e in
             events(tmp_path / kind / "run" / twin).Images("Neurons/learned_change")}
            for kind in ("straight", "resumed"))
        assert sorted(resumed) == [0, 1, 2] and resumed == straight, twin


def one_recorded_step(name: str, dead: bool) -> tuple[dict, dict]:
    """One recorded plain-SGD step (lr 0.1, float64) of a small twin ``name``: its update
    ratios and, per weight, log10(lr std(dW) / std(W after)) computed from the step's gradient;
    ``dead``: every hidden ReLU shut by very negative biases first."""
    config = TrainConfig(Architecture.parse("6-5-3"), OptimizerSpec.create("sgd", 0.1), 1, 4, 0,
                         "float64", "cpu")
    backend = build_backend(name, config)
    if dead:
        first = backend.model[0]
        bias = first.b if name == "scratch" else first.bias.data
        bias[...] = -1e3
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
    backend.start_epoch(1, [0], [0])
    backend.train_step(*next(backend.loader(x, y).batches(np.arange(4), 4)))
    after = backend.state_dict()
    with np.errstate(divide="ignore"):  # a dead layer's gradient is 0
        expected = {weight: np.log10(0.1 * np.std(np.asarray(p.grad)) / np.std(after[weight]))
                    for weight, p in backend.weights}
    return dict(zip(expected, backend.step_update_ratios()[0], strict=True)), expected


@pytest.mark.parametrize("name", ["scratch", "torch"])
def test_the_update_ratio_is_the_steps_change_against_the_weights(name: str) -> None:
    """Plain SGD moves W by -lr dW, so std(update) / std(W) is lr std(dW) / std(W) (float64,
    1e-12); a layer whose units are all dead takes no step and reads the floor, -10."""
    ratios, expected = one_recorded_step(name, dead=False)
    for weight, ratio in ratios.items():
        assert abs(ratio - expected[weight]) <= 1e-12, f"{name} {weight}: {ratio} != " \
            f"{expected[weight]} (float64, 1e-12)"
    ratios, _ = one_recorded_step(name, dead=True)
    assert ratios == {"0.weight": -10.0, "2.weight": -10.0}, f"{name}, all dead: {ratios}"


def test_a_test_set_of_three_digits_shows_one_top_digit_per_neuron(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Fewer test images than the 3x3 mosaic needs: each neuron shows the largest square number
    of them (1), drawn as a 1x1 mosaic (before: a reshape error)."""
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (10, IMAGE_SIDE, IMAGE_SIDE))
    (train_x, train_y), (test_x, test_y) = (learnable_images(n, rng, templates) for n in (300, 3))
    write_dataset(tmp_path / "data" / "MNIST" / "raw", {
        "train_images": train_x, "train_labels": train_y, "test_images": test_x,
        "test_labels": test_y})
    assert train(tmp_path / "data", tmp_path, "--epochs", "1", capsys=capsys)[0] == 0
    top = events(tmp_path / "run" / "scratch").Images("Neurons/top_digits")[-1]
    assert top.width == 4 * (IMAGE_SIDE + 2) + 2, f"{top.width} pixels wide: 4 digits a row"


def test_no_insight_logs_only_the_epoch_curves(data_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert train(data_dir, tmp_path, "--no-insight", capsys=capsys)[0] == 0
    run = events(tmp_path / "run" / "scratch")
    assert run.Tags()["images"] == []
    assert not [tag for tag in run.Tags()["scalars"] if tag.startswith(
        ("Loss/train_step", "GradNormStep", "UpdateRatio", "DeadUnits"))]


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


def expected_ratio(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.log10(np.std(after - before) / np.std(after)))


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("name", ["scratch", "torch"])
def test_the_update_ratio_of_a_large_layer_is_measured_on_every_other_row_and_column(
        name: str, optimizer: str) -> None:
    """2048x16 has 32,768 weights: its ratio is taken on W[::2, ::2] (in PyTorch's layout; the
    same entries in scratch's), the 16x10 layer's on all of it. The third step of momentum or
    Adam, recorded: the ratios are those of the weights before and after it (float64, 1e-12),
    so the samples see the optimizer's in-place update."""
    config = TrainConfig(Architecture.parse("2048-16-10"), OptimizerSpec.create(optimizer, 0.01),
                         1, 4, 0, "float64", "cpu")
    backend = build_backend(name, config)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((12, 2048)), rng.integers(0, 10, 12)
    backend.start_epoch(3, [], [2])
    batches = backend.loader(x, y).batches(np.arange(12), 4)
    for _ in range(2):
        backend.train_step(*next(batches))
    before = {key: np.array(value) for key, value in backend.state_dict().items()}  # a copy
    backend.train_step(*next(batches))
    after = backend.state_dict()
    expected = [expected_ratio(before["0.weight"][::2, ::2], after["0.weight"][::2, ::2]),
                expected_ratio(before["2.weight"], after["2.weight"])]
    ratios = backend.step_update_ratios()[0]
    assert np.allclose(ratios, expected, rtol=0, atol=1e-12), (
        f"{name} {optimizer}: {ratios} != {expected} (float64, 1e-12)")


@pytest.mark.parametrize(("rows", "count"), [(1000, 9), (12, 4), (9, 9), (3, 1)])
def test_top_rows_are_the_rows_of_the_largest_values_largest_first(rows: int, count: int
                                                                  ) -> None:
    values = np.random.default_rng(rows).standard_normal((rows, 16))
    expected = np.argsort(-values, axis=0)[:count]
    assert np.array_equal(top_rows(values, count), expected), "not argsort's first rows"


def test_neuron_tiles_show_sign_and_skip_non_square_inputs() -> None:
    weight = np.zeros((2, 16))
    weight[0, 0], weight[1, 5] = 1.0, -0.5
    tiles = neuron_tiles(weight)
    assert tiles[2, 2] == 254 and tiles[3, 9] == 0, "+max red, -max blue"
    assert tiles[3, 2] == 127, "zero is the neutral middle"
    assert neuron_tiles(np.zeros((3, 15))) is None
