"""Optimizer lockstep: scratch.optim against torch.optim, weights compared after every step."""

from __future__ import annotations

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
