"""The bench's yardsticks do the product's work: one epoch of each, from the same weights on the
same batches, leaves the weights the product's epoch leaves (float64, tight)."""

from __future__ import annotations

import numpy as np
import pytest

from compare.bench.plain_loops import PLAIN_LOOPS
from compare.harness import tolerance
from compare.harness.arch import Architecture
from compare.layers import ACTIVATIONS
from compare.training.build import build_backend
from compare.training.config import TrainConfig
from compare.training.history import History
from compare.training.loop import StepLoop
from compare.training.optimizers import OptimizerSpec
from compare.training.torch_backend import TorchBackend
from compare.training.torch_random import set_process_states
from compare.training.twin import Twin
from tests.helpers import assert_states_close

ROWS, BATCH, LR = 50, 16, 0.5  # the last batch is short: 50 = 3 x 16 + 2
WIDTHS = (12, 7, 5, 3)


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_plain_loop_epoch_leaves_the_product_weights(backend: str, activation: str) -> None:
    assert_plain_loop_does_the_product_epoch(backend, Architecture(WIDTHS, activation))


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize(("activation", "norm", "dropout"), [
    ("relu", "batch", 0.0), ("tanh", "layer", 0.0), ("sigmoid", "none", 0.3),
    ("relu", "batch", 0.2), ("leaky_relu", "layer", 0.2)])
def test_plain_loop_with_norm_and_dropout(backend: str, activation: str, norm: str,
                                          dropout: float) -> None:
    """The layers run their own code in the scratch yardstick; the weights, the running
    statistics and (with dropout) the masks come out as the product's."""
    assert_plain_loop_does_the_product_epoch(
        backend, Architecture(WIDTHS, activation, norm=norm, dropout=dropout))


def assert_plain_loop_does_the_product_epoch(backend: str, arch: Architecture) -> None:
    config = TrainConfig(arch, OptimizerSpec.create("sgd", LR), 1, BATCH, 0, "float64", "cpu")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((ROWS, WIDTHS[0])), rng.integers(0, WIDTHS[-1], ROWS)
    product, plain = build_backend(backend, config), build_backend(backend, config)
    initial = {name: value.copy() for name, value in product.state_dict().items()}
    order = np.random.default_rng(2).permutation(ROWS)

    twin = Twin(product, product.loader(x, y), History(backend, "cpu"))
    StepLoop([twin], BATCH).epoch(order)
    losses = twin.records.losses
    loop = PLAIN_LOOPS[backend](plain, plain.loader(x, y), LR)
    if backend == "torch":  # the same masks: see draw_as_the_product
        draw_as_the_product(plain)
    loop.epoch(order, BATCH)

    moved = tolerance.state_rel_diff(product.state_dict(), initial)
    assert moved > 1e-3, f"the product's epoch barely moved the weights ({moved:.1e})"
    assert_states_close(plain.state_dict(), product.state_dict(),
                        f"{backend} plain loop ({arch.activation_label}) against the product's "
                        "epoch")
    if backend == "scratch":  # it records each step's loss, as the product does
        _, rel = tolerance.errors(loop.losses, losses)
        assert rel <= tolerance.FLOAT64_MAX_REL, (
            f"step losses differ by {rel:.2e}; {tolerance.FLOAT64.name}")


def draw_as_the_product(backend: TorchBackend) -> None:
    """The textbook loop's nn.Dropout draws from torch's process-wide generator, the product's
    from generators of the backend's own (compare.training.torch_random), seeded alike in every
    copy: the process's generator is set to where they start. (Scratch's Dropout layers hold
    their generators.)"""
    set_process_states(backend.generators.states)
