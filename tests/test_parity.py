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
from compare.harness.parity import network_rows, random_batch, run_parity
from compare.harness.report import make_row
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
    assert_rows_ok(network_rows(scratch_model, torch_model, x, upstream, target), dtype, context)


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


FINITE_DIFFERENCE_SECTIONS = ("finite-diff grad(upstream)", "finite-diff grad(cross-entropy)")


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("arch", ["784-64-10", "784-128-64-10", "30-8-8-8-8-8-8-8-10"])
def test_finite_differences_confirm_scratch_gradients(arch: str, activation: str) -> None:
    """On the real network, at full width: every parameter and the input, sampled and
    projected, for both losses."""
    report = run_parity(Architecture.parse(arch, activation), batch_size=8, seed=3)
    rows = [r for r in report.rows if r.section in FINITE_DIFFERENCE_SECTIONS]
    assert_rows_ok(rows, "float64", f"finite differences {arch} {activation}")
    linear = [f"{2 * i} Linear" for i in range(len(arch.split("-")) - 1)]
    for section in FINITE_DIFFERENCE_SECTIONS:
        checked = {(r.layer, r.tensor) for r in rows if r.section == section}
        assert checked == {(layer, tensor) for layer in linear
                           for tensor in ("dW", "dW·v", "db", "db·v")} | {
            ("0 Linear", "dX"), ("0 Linear", "dX·v")}


def test_a_wrong_backward_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness must be able to fail: a ReLU that forgets its gate is reported."""
    monkeypatch.setattr(scratch.ReLU, "backward", lambda self, grad_out: grad_out)
    arch = Architecture.parse("20-16-16-4", "relu")
    scratch_model, torch_model = build_twins(arch, seed=0, dtype="float64")
    x, upstream, target = random_batch(arch.widths, 8, "float64", 1)
    bad = [r for r in network_rows(scratch_model, torch_model, x, upstream, target) if not r.ok]
    assert {r.layer for r in bad} >= {"0 Linear", "1 ReLU"}
    report = run_parity(arch, batch_size=8)
    assert {r.section for r in report.rows if not r.ok} >= set(FINITE_DIFFERENCE_SECTIONS)


WIDE = "784-128-64-10"
PLANTED = (300, 17)
"""One entry of the first layer's dW (784, 128) (scratch's layout; torch's is its transpose)."""


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_one_wrong_entry_in_a_wide_layer_is_caught(monkeypatch: pytest.MonkeyPatch,
                                                   activation: str) -> None:
    """One of the 100,352 entries of the first layer's dW off by a tenth of the largest: the
    torch rows and the finite differences' projection both fail on that tensor, and on no
    other (16 sampled entries would miss it)."""
    planted = scratch.Linear.backward_parameters

    def backward_parameters(self: scratch.Linear, grad_out: np.ndarray) -> None:
        planted(self, grad_out)
        if self.in_features == 784:
            self.dW[PLANTED] += 0.1 * np.max(np.abs(self.dW))

    monkeypatch.setattr(scratch.Linear, "backward_parameters", backward_parameters)
    report = run_parity(Architecture.parse(WIDE, activation), dtype="float64", seed=0)
    bad = [r for r in report.rows if not r.ok]
    assert {(r.section, r.layer, r.tensor) for r in bad} == {
        ("grad(upstream)", "0 Linear", "dW"), ("grad(cross-entropy)", "0 Linear", "dW"),
        ("eval grad(upstream)", "0 Linear", "dW"),
        ("finite-diff grad(upstream)", "0 Linear", "dW·v"),
        ("finite-diff grad(cross-entropy)", "0 Linear", "dW·v")}, report.table()
    torch_rows = [r for r in bad if not r.section.startswith("finite-diff")]
    assert all(r.worst == PLANTED[::-1] and r.mismatches == 1 for r in torch_rows)
    assert not report.ok and "FAIL" in report.table().splitlines()[-1]


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
    assert sections == {"forward", "grad(upstream)", "grad(cross-entropy)", "eval forward",
                        "eval grad(upstream)", *FINITE_DIFFERENCE_SECTIONS}
    assert {r.tensor for r in report.rows} == {"Y", "dW", "db", "dX", "dW·v", "db·v", "dX·v"}
    assert "PASS" in report.table().splitlines()[-1]
    assert report.to_json()["rows"][0].keys() == {
        "section", "layer", "tensor", "max_abs_error", "rel_error", "ok", "worst", "mismatches",
        "entries", "term_scale"}
    assert report.to_json()["finite_difference_floors"].keys() == set(FINITE_DIFFERENCE_SECTIONS)


def test_every_row_names_its_worst_entry_and_its_mismatches() -> None:
    actual, expected = np.zeros((3, 4)), np.zeros((3, 4))
    actual[2, 1], actual[0, 3] = 1e-9, 1e-3
    actual[1, 1] = expected[1, 1] = 1.0
    row = make_row("forward", "0 Linear", "Y", actual, expected, tolerance.FLOAT64)
    assert (row.worst, row.mismatches, row.entries, row.ok) == ((0, 3), 2, 12, False)
    actual[1, 1] = np.nan
    assert make_row("forward", "0 Linear", "Y", actual, expected, tolerance.FLOAT64).worst == (1, 1)


def test_float32_tolerance_is_torchs_assert_close_default() -> None:
    assert (tolerance.FLOAT32.rtol, tolerance.FLOAT32.atol) == (1.3e-6, 1e-5)
    expected = np.array([1.0, 100.0])
    assert not tolerance.FLOAT32.mismatches(expected + [9e-6, 1e-4], expected).any()
    assert list(tolerance.FLOAT32.mismatches(expected + [2e-5, 0.0], expected)) == [True, False]


def test_finite_difference_floor_is_the_loss_rounding() -> None:
    """16·eps·(loss scale)/h, added to the relative limit; a NaN never passes."""
    tol = tolerance.finite_differences(loss_scale=2.0, step=1e-6)
    floor = 16 * np.finfo(np.float64).eps * 2.0 / 1e-6
    assert tol.atol == pytest.approx(floor) and tol.max_rel == 1e-7
    expected = np.array([1e-3, 0.0])
    assert not tol.mismatches(expected + [1e-10 + 0.9 * floor, 0.0], expected).any()
    assert tol.mismatches(expected + [1e-10 + 1.1 * floor, 0.0], expected).any()
    assert tol.mismatches(np.array([np.nan, 0.0]), expected).any()
