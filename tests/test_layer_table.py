"""The layer table: every kind builds the same layer in both twins, and a declaration forgotten or
wrong in one place is refused loudly, naming the layer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import scratch
from compare.harness.arch import Architecture
from compare.harness.twins import WeightMismatchError, build_twins, check_same_layer, copy_weights
from compare.layers import LAYER_KINDS, LINEAR, LayerKind, kind_of, table

EXAMPLE_ARGUMENTS = {"in_features": 3, "out_features": 2, "dim": -1, "num_features": 3,
                     "normalized_shape": 3}
"""A value for each constructor argument a kind of the table names (add one for a new argument)."""


def example_layer(kind: LayerKind) -> scratch.Module:
    arguments = {name: EXAMPLE_ARGUMENTS[name] for name in kind.arguments}
    extra = {"dtype": np.float64} if kind.takes_dtype else {}
    extra |= {"rng": np.random.default_rng(0)} if kind is LINEAR else {}
    return kind.scratch_factory(kind.complete({}))(**arguments, **extra)


def replace_kind(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> LayerKind:
    """The table with kind ``name`` declared with ``changes``, for this test."""
    old = next(kind for kind in table.LAYER_KINDS if kind.name == name)
    new = dataclasses.replace(old, **changes)
    monkeypatch.setattr(table, "LAYER_KINDS",
                        tuple(new if kind is old else kind for kind in table.LAYER_KINDS))
    if name in table.ACTIVATIONS:
        monkeypatch.setitem(table.ACTIVATIONS, name, new)
    return new


@pytest.mark.parametrize("kind", LAYER_KINDS, ids=lambda kind: kind.name)
def test_every_kind_builds_the_same_layer_in_both_twins(kind: LayerKind) -> None:
    layer = example_layer(kind)
    twin = kind.torch_like(layer, dtype=torch.float64)
    assert kind_of(layer) is kind and kind_of(twin) is kind
    check_same_layer(kind.name, kind, layer, twin)
    assert type(twin).__name__ == kind.torch and isinstance(layer, scratch.Module)


def test_names_are_unique() -> None:
    names = [kind.name for kind in LAYER_KINDS]
    assert len(set(names)) == len(names), names
    assert len({kind.scratch for kind in LAYER_KINDS}) == len(LAYER_KINDS)


def test_a_layer_missing_from_the_table_is_named() -> None:
    class Swish(scratch.Module):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return x / (1 + np.exp(-x))

    rng = np.random.default_rng(0)
    mine = scratch.Sequential(scratch.Linear(4, 3, rng=rng), Swish(), scratch.Linear(3, 2, rng=rng),
                              scratch.Softmax(dim=1))
    theirs = nn.Sequential(nn.Linear(4, 3), nn.SiLU(), nn.Linear(3, 2), nn.Softmax(dim=1))
    for src, dst in [(mine, theirs), (theirs, mine)]:
        with pytest.raises(WeightMismatchError, match="layer 1: Swish is not in the layer table"):
            copy_weights(src, dst)


def test_networks_of_different_lengths_name_the_layer_without_a_twin() -> None:
    mine = Architecture.parse("6-4-3").build_scratch(seed=0)
    theirs = Architecture.parse("6-4-4-3").build_torch()
    with pytest.raises(WeightMismatchError, match=r"torch's layer 4 \(Linear\) has no twin"):
        copy_weights(mine, theirs)


def test_a_forgotten_transpose_is_refused_naming_the_layer(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    replace_kind(monkeypatch, "linear", transposed=())
    with pytest.raises(WeightMismatchError, match=r"layer 0 \(Linear\): scratch W \(6, 4\) needs "
                                                  r"torch weight \(6, 4\), but torch weight is "
                                                  r"\(4, 6\)"):
        build_twins(Architecture.parse("6-4-3", "relu"), seed=0)


def test_a_torch_class_that_does_not_exist_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    replace_kind(monkeypatch, "tanh", torch="Tahn")
    with pytest.raises(ValueError, match=r"tanh names torch.nn.Tahn, which is not a torch.nn"):
        build_twins(Architecture.parse("6-4-3", "tanh"), seed=0)


def test_a_torch_class_of_another_kind_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    replace_kind(monkeypatch, "tanh", torch="Sigmoid")
    with pytest.raises(WeightMismatchError, match="layer 1: scratch Tanh vs torch Sigmoid"):
        build_twins(Architecture.parse("6-4-3", "tanh"), seed=0)
