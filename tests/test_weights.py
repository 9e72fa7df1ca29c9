"""Copying weights between the twins, both ways, and refusing networks that do not match."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compare.harness.arch import Architecture
from compare.harness.twins import WeightMismatchError, copy_weights


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_returns_identical_arrays(dtype: str) -> None:
    arch = Architecture.parse("784-128-64-10", "relu")
    model = arch.build_scratch(seed=0, dtype=dtype)
    original = [p.value.copy() for p in model.parameters()]
    reference = arch.build_torch(dtype=dtype)
    copy_weights(model, reference)
    for p in model.parameters():
        p.value[...] = 0
    copy_weights(reference, model)
    assert all(np.array_equal(a, p.value)
               for a, p in zip(original, model.parameters(), strict=True))

    torch_original = {k: v.clone() for k, v in arch.build_torch(dtype=dtype).state_dict().items()}
    reference.load_state_dict(torch_original)
    copy_weights(reference, model)
    copy_weights(model, reference)
    for name, value in reference.state_dict().items():
        assert torch.equal(value, torch_original[name]), name


def test_layout_is_transposed() -> None:
    arch = Architecture.parse("3-2", "relu")
    model = arch.build_scratch(seed=0, dtype="float64")
    reference = arch.build_torch(dtype="float64")
    copy_weights(model, reference)
    assert model[0].W.shape == (3, 2) and tuple(reference[0].weight.shape) == (2, 3)
    assert np.array_equal(reference[0].weight.detach().numpy(), model[0].W.T)


def test_copy_into_scratch_keeps_the_same_arrays() -> None:
    """Optimizers hold references to the parameter arrays: a copy must write in place."""
    arch = Architecture.parse("4-3-2", "tanh")
    model = arch.build_scratch(seed=0, dtype="float32")
    before = [id(p.value) for p in model.parameters()]
    copy_weights(arch.build_torch(), model)
    assert [id(p.value) for p in model.parameters()] == before


@pytest.mark.parametrize(
    ("scratch_arch", "torch_arch", "message"),
    [
        (
            "784-128-64-10",
            "784-128-32-10",
            r"layer 2 \(Linear\): scratch W \(128, 64\) needs torch weight \(64, 128\) "
            r"\(its transpose\), but torch weight is \(32, 128\)",
        ),
        ("784-128-10", "784-128-64-10", "scratch network has 4 layers, torch network has 6"),
        ("784-10", "785-10", r"layer 0 \(Linear\).*\(10, 784\).*\(10, 785\)"),
    ],
)
def test_mismatched_networks_are_refused(scratch_arch: str, torch_arch: str, message: str) -> None:
    model = Architecture.parse(scratch_arch).build_scratch(seed=0)
    reference = Architecture.parse(torch_arch).build_torch()
    for src, dst in [(model, reference), (reference, model)]:
        with pytest.raises(WeightMismatchError, match=message):
            copy_weights(src, dst)


def test_mismatched_activation_is_refused() -> None:
    model = Architecture.parse("8-4-2", "relu").build_scratch(seed=0)
    reference = Architecture.parse("8-4-2", "tanh").build_torch()
    with pytest.raises(WeightMismatchError, match="layer 1: scratch ReLU vs torch Tanh"):
        copy_weights(model, reference)


def test_copy_needs_one_of_each() -> None:
    model = Architecture.parse("8-2").build_scratch(seed=0)
    with pytest.raises(TypeError, match="one scratch and one torch network"):
        copy_weights(model, model)
