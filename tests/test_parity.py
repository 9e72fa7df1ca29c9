"""Scratch against torch, layer by layer: forward outputs and gradients (random upstream gradient
and cross-entropy), over activations x dtypes x architectures x batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratch
from compare.harness import tolerance
from compare.harness.arch import Architecture
from compare.harness.finite_differences import finite_difference_rows
from compare.harness.parity import forward_rows, gradient_rows, random_batch, run_parity
from compare.harness.twins import build_twins
from compare.layers import ACTIVATIONS
from tests.helpers import assert_rows_ok

ARCHS = [
    "784-64-10",  # one hidden layer
    "784-128-64-10",
    "30-8-8-8-8-8-8-8-10",  # deep and narrow: 8 Linear layers
    "12-5",  # no hidden layer: Linear then Softmax
]


def check_parity(arch: Architecture, dtype: str, batch_size: int, seed: int = 0) -> None:
    scratch_model, torch_model = build_twins(arch, seed=seed, dtype=dtype)
    x, upstream, target = random_batch(arch.widths, batch_size, dtype, seed + 1)
    context = f"{arch.spec} {arch.activation} {dtype} batch {batch_size}"
    rows = forward_rows(scratch_model, torch_model, x)
    rows += gradient_rows(scratch_model, torch_model, x, upstream=upstream)
    rows += gradient_rows(scratch_model, torch_model, x, target=target)
    assert_rows_ok(rows, dtype, context)


@pytest.mark.parametrize("batch_size", [1, 7, 256])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_layerwise_parity(activation: str, dtype: str, arch: str, batch_size: int) -> None:
    check_parity(Architecture.parse(arch, activation), dtype, batch_size)


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 40), min_size=2, max_size=9),
    activation=st.sampled_from(list(ACTIVATIONS)),
    dtype=st.sampled_from(["float32", "float64"]),
    batch_size=st.integers(1, 64),
    seed=st.integers(0, 2**16),
)
def test_parity_on_generated_shapes(widths, activation, dtype, batch_size, seed) -> None:
    check_parity(Architecture(tuple(widths), activation), dtype, batch_size, seed)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("arch", ["784-64-10", "784-128-64-10", "30-8-8-8-8-8-8-8-10"])
def test_finite_differences_confirm_scratch_gradients(arch: str, activation: str) -> None:
    rows = finite_difference_rows(Architecture.parse(arch, activation), seed=3)
    assert_rows_ok(rows, "float64", f"finite differences {arch} {activation}")
    assert {r.tensor for r in rows} == {"dW", "db", "dX"}


def test_a_wrong_backward_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness must be able to fail: a ReLU that forgets its gate is reported."""
    monkeypatch.setattr(scratch.ReLU, "backward", lambda self, grad_out: grad_out)
    arch = Architecture.parse("20-16-16-4", "relu")
    scratch_model, torch_model = build_twins(arch, seed=0, dtype="float64")
    x, upstream, _ = random_batch(arch.widths, 8, "float64", 1)
    bad = [r for r in gradient_rows(scratch_model, torch_model, x, upstream=upstream) if not r.ok]
    assert {r.layer for r in bad} >= {"0 Linear", "1 ReLU"}
    assert any(not r.ok for r in finite_difference_rows(arch, seed=0))


def test_softmax_gradient_is_not_trivially_zero() -> None:
    """With a random upstream gradient the Softmax input gradient is far from zero."""
    arch = Architecture.parse("10-6", "relu")
    scratch_model = arch.build_scratch(seed=0, dtype="float64")
    x, upstream, _ = random_batch(arch.widths, 4, "float64", 2)
    scratch_model.forward(x)
    dx = scratch_model[-1].backward(upstream)
    assert np.max(np.abs(dx)) > 1e-2


def test_run_parity_report() -> None:
    report = run_parity(
        Architecture.parse("784-128-64-10", "relu"), dtype="float64", batch_size=32, seed=0
    )
    assert report.ok and report.max_rel_error <= tolerance.FLOAT64_MAX_REL
    sections = {r.section for r in report.rows}
    assert sections == {
        "forward",
        "grad(upstream)",
        "grad(cross-entropy)",
        "finite-diff grad(upstream)",
        "finite-diff grad(cross-entropy)",
    }
    assert "PASS" in report.table().splitlines()[-1]
    assert report.to_json()["rows"][0].keys() == {
        "section",
        "layer",
        "tensor",
        "max_abs_error",
        "rel_error",
        "ok",
    }


def test_float32_tolerance_is_torchs_assert_close_default() -> None:
    assert (tolerance.FLOAT32.rtol, tolerance.FLOAT32.atol) == (1.3e-6, 1e-5)
    expected = np.array([1.0, 100.0])
    assert tolerance.FLOAT32.passes(expected + [9e-6, 1e-4], expected, 0.0)
    assert not tolerance.FLOAT32.passes(expected + [2e-5, 0.0], expected, 0.0)
