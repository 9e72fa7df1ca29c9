"""The bench's yardsticks do the product's work: one epoch of each, from the same weights on the
same batches, leaves the weights the product's epoch leaves (float64, tight)."""

from __future__ import annotations

import numpy as np
import pytest

from compare import tolerance
from compare.arch import Architecture
from compare.data import Splits
from compare.optimizers import OptimizerSpec
from compare.plain_loops import PLAIN_LOOPS
from compare.train import TrainConfig, batch_bounds, build_backend

ROWS, BATCH, LR = 50, 16, 0.5  # the last batch is short: 50 = 3 x 16 + 2


def _splits(features: int, classes: int) -> Splits:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((ROWS, features)), rng.integers(0, classes, ROWS)
    empty = np.zeros((0, features))
    return Splits(x, y, empty, y[:0], empty, y[:0], mean=0.0, std=1.0, source={})


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_plain_loop_epoch_leaves_the_product_weights(backend: str, activation: str) -> None:
    widths = (12, 7, 5, 3)
    config = TrainConfig(Architecture(widths, activation), OptimizerSpec.create("sgd", LR), 1,
                         BATCH, 0, "float64", "cpu")
    splits = _splits(widths[0], widths[-1])
    product, plain = build_backend(backend, config, splits), build_backend(backend, config, splits)
    initial = [w.copy() for w in product.weights()]
    batches, order = batch_bounds(ROWS, BATCH), np.random.default_rng(2).permutation(ROWS)

    product.start_epoch(order, len(batches))
    for start, stop in batches:
        product.train_step(start, stop)
    loop = PLAIN_LOOPS[backend](plain, LR)
    loop.epoch(batches, order)

    moved = tolerance.weight_rel_diff(product.weights(), initial)
    assert moved > 1e-3, f"the product's epoch barely moved the weights ({moved:.1e})"
    rel = tolerance.weight_rel_diff(plain.weights(), product.weights())
    assert rel <= tolerance.FLOAT64_MAX_REL, (
        f"{backend} plain loop ({activation}) ends {rel:.2e} from the product's weights; "
        f"{tolerance.FLOAT64.name}")
    if backend == "scratch":  # it records each step's loss, as the product does
        _, rel = tolerance.errors(loop.losses, product.step_losses())
        assert rel <= tolerance.FLOAT64_MAX_REL, (
            f"step losses differ by {rel:.2e}; {tolerance.FLOAT64.name}")
