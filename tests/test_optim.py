"""Optimizer lockstep: scratch.optim against torch.optim, weights compared after every step."""

from __future__ import annotations

import numpy as np
import pytest

import scratch
from compare.arch import Architecture
from compare.lockstep import optimizer_lockstep
from compare.optimizers import OptimizerSpec

OPTIMIZERS = {
    "sgd": OptimizerSpec.create("sgd", 0.1),
    "sgd+momentum+nesterov+weight_decay": OptimizerSpec.create(
        "momentum", 0.05, momentum=0.9, nesterov=True, weight_decay=1e-3
    ),
    "sgd+momentum(dampening)": OptimizerSpec("momentum", 0.05, {"momentum": 0.8, "dampening": 0.3}),
    "adam": OptimizerSpec.create("adam", 1e-3),
    "adam+weight_decay": OptimizerSpec(
        "adam", 2e-3, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-2}
    ),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_100_steps_in_lockstep_float64(name: str) -> None:
    diffs = optimizer_lockstep(
        Architecture.parse("784-128-64-10", "relu"),
        OPTIMIZERS[name],
        steps=100,
        dtype="float64",
        batch_size=32,
        seed=0,
    )
    worst = max(diffs)
    assert len(diffs) == 100
    assert worst <= 1e-10, f"{name}: weights differ by {worst:.3e} relative (float64 limit 1e-10)"


def test_lockstep_sees_a_different_rule() -> None:
    """The check can fail: scratch with a different momentum drifts away from torch at once."""
    arch = Architecture.parse("20-10-4", "tanh")
    spec = OptimizerSpec.create("momentum", 0.1, momentum=0.9)
    original = scratch.SGD.step

    def step_with_wrong_momentum(self: scratch.SGD) -> None:
        self.momentum = 0.5
        original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scratch.SGD, "step", step_with_wrong_momentum)
        diffs = optimizer_lockstep(arch, spec, steps=5, dtype="float64")
    assert diffs[-1] > 1e-6


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda p: scratch.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda p: scratch.SGD(p, lr=-1.0), "invalid learning rate"),
        (lambda p: scratch.Adam(p, betas=(1.0, 0.9)), "invalid Adam settings"),
        (lambda p: scratch.SGD([], lr=0.1), "empty parameter list"),
    ],
)
def test_optimizer_settings_are_validated(factory, message: str) -> None:
    params = scratch.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match=message):
        factory(params)


def test_optimizer_moves_parameters_into_one_array_keeping_their_numbers() -> None:
    model = Architecture.parse("6-5-3", "relu").build_scratch(seed=0, dtype="float64")
    before = [(p.value.copy(), p.grad.copy()) for p in model.parameters()]
    optimizer = scratch.SGD(model.parameters(), lr=0.1)
    assert optimizer.values.shape == (6 * 5 + 5 + 5 * 3 + 3,)
    for p, (value, grad) in zip(model.parameters(), before):
        assert p.value.base is optimizer.values and p.grad.base is optimizer.grads
        np.testing.assert_array_equal(p.value, value)
        np.testing.assert_array_equal(p.grad, grad)
    model[0].weight.grad[...] = 1.0
    optimizer.step()
    np.testing.assert_allclose(model[0].W, before[0][0] - 0.1, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(model[2].W, before[2][0])  # zero gradient: unchanged


def test_second_optimizer_on_the_same_parameters_shares_their_arrays() -> None:
    params = scratch.mlp([4, 3, 2], "tanh", rng=np.random.default_rng(0)).parameters()
    first, second = scratch.SGD(params, lr=0.1), scratch.Adam(params)
    assert second.values is first.values and second.grads is first.grads


def test_optimizer_refuses_to_step_after_its_parameters_moved() -> None:
    params = scratch.mlp([4, 3, 2], "tanh", rng=np.random.default_rng(0)).parameters()
    whole = scratch.SGD(params, lr=0.1)
    scratch.SGD(params[:2], lr=0.1)  # re-lays out the first layer alone
    with pytest.raises(RuntimeError, match="moved by another optimizer"):
        whole.step()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (lambda p: [p[0], p[0]], "more than once"),
        (lambda p: [p[0], scratch.Parameter.of(np.zeros(3, np.float32))], "share one dtype"),
    ],
)
def test_parameter_lists_that_cannot_be_flattened(params, message: str) -> None:
    own = scratch.Linear(2, 2, dtype=np.float64).parameters()
    with pytest.raises(ValueError, match=message):
        scratch.SGD(params(own), lr=0.1)
