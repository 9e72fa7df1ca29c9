"""The tutorial's table "single neuron <-> layer of neurons", executable: a layer of Neuron
objects computes exactly what Linear computes as one matrix product, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

import scratch
from compare.harness import tolerance
from scratch.neuron import Neuron, NeuronLayer

SHAPES = 50


def test_one_neuron_is_a_weighted_sum_and_its_gradients() -> None:
    neuron = Neuron(np.array([2.0, -1.0, 0.5]), 0.25)
    x = [1.0, 3.0, -2.0]
    assert neuron.forward(x) == 2.0 - 3.0 - 1.0 + 0.25
    dw, db, dx = neuron.backward(x, 2.0)
    assert dw == [2.0, 6.0, -4.0] and db == 2.0 and dx == [4.0, -2.0, 1.0]


@pytest.mark.parametrize("seed", range(SHAPES))
def test_a_layer_of_neurons_computes_what_linear_computes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, fan_in, fan_out = (int(n) for n in rng.integers(1, 9, size=3))
    linear = scratch.Linear(fan_in, fan_out, rng=rng, dtype=np.float64)
    neurons = NeuronLayer.like(linear)
    x, dy = rng.standard_normal((batch, fan_in)), rng.standard_normal((batch, fan_out))
    y = linear.forward(x)
    dx = linear.backward(dy)
    y_neurons = neurons.forward(x)
    dw_neurons, db_neurons, dx_neurons = neurons.backward(dy)
    shape = f"batch {batch}, {fan_in} inputs, {fan_out} neurons"
    for name, got, expected in [("y", y_neurons, y), ("dW", dw_neurons, linear.dW),
                                ("db", db_neurons, linear.db), ("dx", dx_neurons, dx)]:
        _, rel = tolerance.errors(got, expected)
        assert rel <= tolerance.FLOAT64_MAX_REL, (
            f"{name} ({shape}): neurons and Linear differ by {rel:.2e}; {tolerance.FLOAT64.name}")


def test_the_proof_can_fail() -> None:
    """A neuron that forgets its bias is caught."""
    rng = np.random.default_rng(0)
    linear = scratch.Linear(3, 2, rng=rng, dtype=np.float64)
    neurons = NeuronLayer.like(linear)
    neurons.neurons[1].b = 0.0
    x = rng.standard_normal((4, 3))
    _, rel = tolerance.errors(neurons.forward(x), linear.forward(x))
    assert rel > tolerance.FLOAT64_MAX_REL
