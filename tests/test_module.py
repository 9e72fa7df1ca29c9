"""Scratch modules as PyTorch has them: named parameters and buffers for any layer, train() and
eval(), and both twins evaluating in evaluation mode."""

from __future__ import annotations

import numpy as np
import pytest

import scratch
from compare.harness.arch import Architecture
from compare.training.build import build_backend
from compare.training.config import TrainConfig
from compare.training.optimizers import OptimizerSpec


class Scaled(scratch.Module):
    """y = x · scale + shift, with a buffer counting the rows seen (as BatchNorm1d counts)."""

    buffer_names = ("rows_seen",)

    def __init__(self, width: int) -> None:
        self.scale = scratch.Parameter.of(np.ones(width))
        self.shift = scratch.Parameter.of(np.zeros(width))
        self.rows_seen = np.zeros(1)
        self.inner = scratch.Identity()


def test_named_parameters_and_buffers_of_any_module() -> None:
    model = scratch.Sequential(scratch.Linear(2, 3, rng=np.random.default_rng(0)), Scaled(3))
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight", "0.bias", "1.scale", "1.shift"]
    assert [name for name, _ in model.named_buffers()] == ["1.rows_seen"]
    assert model.parameters()[2] is model[1].scale


def test_train_and_eval_reach_every_layer() -> None:
    model = scratch.Sequential(Scaled(3), scratch.ReLU())
    assert model.training and model[0].inner.training
    assert model.eval() is model
    assert not any(m.training for m in (model, model[0], model[0].inner, model[1]))
    model.train()
    assert all(m.training for m in (model, model[0], model[0].inner, model[1]))


def test_backward_parameters_writes_what_backward_writes() -> None:
    rng = np.random.default_rng(0)
    model = Architecture.parse("6-5-4-3", "tanh").build_scratch(seed=0, dtype="float64")
    x, upstream = rng.standard_normal((7, 6)), rng.standard_normal((7, 3))
    model.forward(x)
    model.backward(upstream)
    full = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad[...] = np.nan
    model.forward(x)
    assert model.backward_parameters(upstream) is None
    for mine, theirs in zip(model.parameters(), full, strict=True):
        np.testing.assert_array_equal(mine.grad, theirs)


@pytest.mark.parametrize("name", ["scratch", "torch"])
def test_both_twins_evaluate_in_eval_mode_and_train_in_train_mode(name: str) -> None:
    config = TrainConfig(Architecture.parse("6-5-3"), OptimizerSpec.create("sgd", 0.1), 1, 4, 0,
                         "float64", "cpu")
    backend = build_backend(name, config)
    seen: list[bool] = []
    hidden = backend.model[1]
    if name == "torch":
        hidden.register_forward_hook(lambda module, inputs, output: seen.append(module.training))
    else:
        forward = hidden.forward
        hidden.forward = lambda x: (seen.append(hidden.training), forward(x))[1]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    backend.evaluate(x, y)
    backend.start_epoch(1)
    batch_x, batch_y = next(backend.loader(x, y).batches(np.arange(8), 4))
    backend.train_step(batch_x, batch_y)
    assert seen == [False, True], f"{name}: modes seen in evaluate, then train_step: {seen}"
