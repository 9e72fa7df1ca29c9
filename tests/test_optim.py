"""Optimizer lockstep: scratch.optim against torch.optim, weights compared after every step."""

from __future__ import annotations

import numpy as np
import pytest

import scratch
from compare.harness import tolerance
from compare.harness.arch import Architecture
from compare.training.lockstep import optimizer_lockstep
from compare.training.optimizers import OptimizerSpec
from tests.helpers import assert_lockstep_close

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
    "adamw": OptimizerSpec(
        "adamw", 2e-3, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}
    ),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_100_steps_in_lockstep_float64(name: str) -> None:
    diffs = optimizer_lockstep(Architecture.parse("784-128-64-10", "relu"), OPTIMIZERS[name],
                               steps=100, dtype="float64", batch_size=32, seed=0)
    assert len(diffs) == 100
    assert_lockstep_close(diffs, tolerance.OPTIMIZER_LOCKSTEP_FLOAT64_MAX_REL, name)


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
    with pytest.raises(AssertionError, match="after step 2 the weights differ"):
        assert_lockstep_close(diffs, tolerance.OPTIMIZER_LOCKSTEP_FLOAT64_MAX_REL, "wrong rule")


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda p: scratch.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda p: scratch.SGD(p, lr=-1.0), "invalid learning rate"),
        (lambda p: scratch.SGD(p, lr=0.1, weight_decay=-1.0), "invalid learning rate"),
        (lambda p: scratch.SGD(p, lr=0.1, momentum=-0.5), "invalid momentum"),
        (lambda p: scratch.Adam(p, betas=(1.0, 0.9)), "invalid Adam settings"),
        (lambda p: scratch.SGD([], lr=0.1), "empty parameter list"),
        (lambda p: scratch.SGD([p[0], p[0]], lr=0.1), "more than once"),
    ],
)
def test_optimizer_settings_are_validated(factory, message: str) -> None:
    params = scratch.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match=message):
        factory(params)


def test_a_step_updates_the_arrays_a_caller_holds() -> None:
    """The optimizer writes into each parameter's own array: a reference taken before the step
    sees the update, and a gradient of zero leaves its parameter alone."""
    model = Architecture.parse("6-5-3", "relu").build_scratch(seed=0, dtype="float64")
    held = [p.value for p in model.parameters()]
    before = [value.copy() for value in held]
    model[0].weight.grad = np.ones_like(model[0].W)
    scratch.SGD(model.parameters(), lr=0.1).step()
    assert all(p.value is value for p, value in zip(model.parameters(), held, strict=True))
    np.testing.assert_allclose(held[0], before[0] - 0.1, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(held[2], before[2])
