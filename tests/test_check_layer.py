"""compare.check_layer: any scratch layer against a torch module, the README's example included;
wrong gradients are caught, pairs that cannot be compared are refused."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import compare
import scratch
from compare.harness.arch import Architecture
from compare.layers import LAYER_KINDS, LayerKind
from tests.helpers import assert_rows_ok

README = Path(__file__).resolve().parents[1] / "README.md"
SIZES = {"in_features": 7, "out_features": 5, "dim": -1, "num_features": 7, "normalized_shape": 7}
"""The constructor arguments the table's kinds take, for a batch of 7 features."""


def readme_example() -> str:
    """The Python code block of the README's section "Checking your own layer"."""
    section = README.read_text().split("## Checking your own layer", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the section should hold one Python example"
    return blocks[0]


@pytest.fixture(scope="module")
def readme() -> dict:
    """The names the README's example defines, after running it (it asserts its report is ok)."""
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    return namespace


def batch(shape: tuple[int, ...], dtype: type = np.float64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def failing(report: compare.LayerReport) -> set[tuple[str, str]]:
    """(section, tensor) of each row out of tolerance."""
    return {(row.section, row.tensor) for row in report.rows if not row.ok}


def test_readme_example_passes(readme: dict) -> None:
    report = readme["report"]
    assert report.ok, report.table()
    assert {(r.section, r.tensor) for r in report.rows} == {
        ("forward", "Y"), ("grad(upstream)", "dweight"), ("grad(upstream)", "dX"),
        *(("finite-diff grad(upstream)", t) for t in ("dweight", "dweight·v", "dX", "dX·v"))}
    assert str(report).splitlines()[-1].startswith("PASS")


def test_readme_layer_in_float32_and_wide(readme: dict) -> None:
    layer = readme["PReLU"](init=0.1, dtype=np.float32)
    report = compare.check_layer(layer, nn.PReLU(init=0.7), batch((64, 300), np.float32))
    assert_rows_ok(report.rows, "float32", "README PReLU, float32")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", LAYER_KINDS, ids=lambda kind: kind.name)
def test_every_kind_in_the_table_passes(kind: LayerKind, dtype: type) -> None:
    extra = {"dtype": dtype} if kind.takes_dtype else {}
    extra |= {"rng": np.random.default_rng(0)} if kind is LAYER_KINDS[0] else {}
    layer = kind.scratch_factory(kind.complete({}))(
        **{name: SIZES[name] for name in kind.arguments}, **extra)
    torch_layer = kind.torch_like(layer, dtype=getattr(torch, np.dtype(dtype).name))
    report = compare.check_layer(layer, torch_layer, batch((6, 7), dtype))
    assert_rows_ok(report.rows, dtype, f"check_layer {kind.name}")
    symbols = {"d" + kind.symbol(name) for name, _ in layer.named_parameters()}
    assert {r.tensor for r in report.rows} == {"Y", "dX", "dX·v"} | symbols | {
        f"{symbol}·v" for symbol in symbols} | {name for name, _ in layer.named_buffers()}


def test_a_pair_of_sequentials_with_a_layer_of_your_own(readme: dict) -> None:
    """Rows for every layer; the README's PReLU sits between two table layers."""
    rng = np.random.default_rng(1)
    mine = scratch.Sequential(scratch.Linear(6, 9, rng=rng, dtype=np.float64), readme["PReLU"](),
                              scratch.Linear(9, 4, rng=rng, dtype=np.float64), scratch.Softmax())
    theirs = nn.Sequential(nn.Linear(6, 9), nn.PReLU(), nn.Linear(9, 4), nn.Softmax(dim=-1))
    report = compare.check_layer(mine, theirs, batch((5, 6)))
    assert_rows_ok(report.rows, "float64", "Sequential with a PReLU")
    labels = ["0 Linear", "1 PReLU", "2 Linear", "3 Softmax"]
    assert [r.layer for r in report.rows if r.section == "forward"] == labels
    assert {r.layer for r in report.rows if r.tensor == "dweight·v"} == {"1 PReLU"}
    assert {r.layer for r in report.rows if r.tensor == "dW·v"} == {"0 Linear", "2 Linear"}


def test_the_twins_of_compare_parity_pass() -> None:
    arch = Architecture.parse("30-8-8-8-8-8-8-8-10", "sigmoid")
    report = compare.check_layer(arch.build_scratch(seed=0, dtype="float32"), arch.build_torch(),
                                 batch((16, 30), np.float32))
    assert_rows_ok(report.rows, "float32", "deep sigmoid stack, float32")


def test_a_wrong_parameter_gradient_is_caught(readme: dict) -> None:
    """The weight's gradient 0.1% off: the torch row and the finite differences both fail."""
    class Wrong(readme["PReLU"]):
        def backward(self, grad_out: np.ndarray) -> np.ndarray:
            dx = super().backward(grad_out)
            self.weight.grad *= 1.001
            return dx

    report = compare.check_layer(Wrong(), nn.PReLU(), batch((8, 5)))
    assert failing(report) == {("grad(upstream)", "dweight"),
                               ("finite-diff grad(upstream)", "dweight"),
                               ("finite-diff grad(upstream)", "dweight·v")}
    assert not report.ok and str(report).splitlines()[-1].startswith("FAIL")


def test_a_wrong_input_gradient_is_caught(readme: dict) -> None:
    """dL/dx wrong in one entry of 2,400: the torch row names it; the projection fails."""
    class Wrong(readme["PReLU"]):
        def backward(self, grad_out: np.ndarray) -> np.ndarray:
            dx = super().backward(grad_out)
            dx[13, 77] += 0.1
            return dx

    report = compare.check_layer(Wrong(), nn.PReLU(), batch((30, 80)))
    assert failing(report) == {("grad(upstream)", "dX"), ("finite-diff grad(upstream)", "dX·v")}
    row = next(r for r in report.rows if (r.section, r.tensor) == ("grad(upstream)", "dX"))
    assert (row.worst, row.mismatches, row.entries) == ((13, 77), 1, 2400)


def test_one_wrong_entry_of_a_wide_linear_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    planted = scratch.Linear.backward_parameters

    def backward_parameters(self: scratch.Linear, grad_out: np.ndarray) -> None:
        planted(self, grad_out)
        self.dW[511, 3] += 0.1 * np.max(np.abs(self.dW))

    monkeypatch.setattr(scratch.Linear, "backward_parameters", backward_parameters)
    layer = scratch.Linear(1024, 256, rng=np.random.default_rng(0), dtype=np.float64)
    report = compare.check_layer(layer, nn.Linear(1024, 256), batch((16, 1024)))
    assert failing(report) == {("grad(upstream)", "dW"), ("finite-diff grad(upstream)", "dW·v")}


class Slope(scratch.Module):
    """PReLU's math, its parameter named ``slope`` rather than torch's ``weight``."""

    def __init__(self, shape: tuple[int, ...] = (1,)) -> None:
        self.slope = scratch.Parameter.of(np.full(shape, 0.25))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0) + self.slope.value * np.minimum(x, 0)


class Empty(scratch.Module):
    """Outputs nothing: (N, 0)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x[:, :0]


def prelu_of_shape(readme: dict, shape: tuple[int, ...]) -> scratch.Module:
    layer = readme["PReLU"]()
    layer.weight = scratch.Parameter.of(np.full(shape, 0.25))
    return layer


@pytest.mark.parametrize(("make", "x", "says"), [
    (lambda r: (r["PReLU"](), nn.PReLU()), np.zeros((0, 5)), "nothing to compare: x has"),
    (lambda r: (r["PReLU"](), nn.PReLU()), np.zeros((4, 0)), "nothing to compare: x has"),
    (lambda r: (scratch.Sequential(), nn.Sequential()), batch((4, 5)),
     "nothing to compare: both Sequentials are empty"),
    (lambda r: (Empty(), nn.Identity()), batch((4, 5)), "nothing to compare: the output"),
    (lambda r: (r["PReLU"](), nn.PReLU()), np.arange(10).reshape(2, 5), "float32 or float64"),
    (lambda r: (r["PReLU"](), nn.PReLU()), np.full((2, 5), np.nan), "NaN"),
    (lambda r: (Slope(), nn.PReLU()), batch((4, 5)), "['slope'], torch ['weight']"),
    (lambda r: (prelu_of_shape(r, (3,)), nn.PReLU()), batch((4, 5)), "weight (3,)"),
    (lambda r: (scratch.Module(), nn.PReLU()), batch((4, 5)), "nothing, torch ['weight']"),
    (lambda r: (r["PReLU"](), nn.Identity()), batch((4, 5)), "['weight'], torch nothing"),
    (lambda r: (scratch.Linear(5, 3, dtype=np.float64), nn.Linear(3, 5)), batch((4, 5)),
     "torch weight is (5, 3)"),
    (lambda r: (scratch.Linear(5, 3, dtype=np.float64), nn.ReLU()), batch((4, 5)),
     "scratch Linear pairs with torch.nn.Linear, not with ReLU"),
    (lambda r: (scratch.Linear(5, 3), nn.Linear(5, 3)), batch((4, 5)),
     "parameter weight is float32, x is float64"),
    (lambda r: (scratch.Sequential(scratch.ReLU()), nn.Sequential(nn.ReLU(), nn.ReLU())),
     batch((4, 5)), "has 1 layers, the torch one 2"),
    (lambda r: (r["PReLU"](), r["PReLU"]()), batch((4, 5)), "need a scratch.Module and a torch"),
], ids=["no rows", "no features", "empty Sequentials", "empty output", "integer x", "NaN x",
        "names differ", "shapes differ", "scratch lacks one", "torch lacks one",
        "transpose missing", "kinds differ", "dtypes differ", "lengths differ", "not torch"])
def test_a_pair_that_cannot_be_compared_is_refused(readme: dict, make, x: np.ndarray,
                                                   says: str) -> None:
    mine, theirs = make(readme)
    with pytest.raises(compare.LayerCheckError, match=re.escape(says)):
        compare.check_layer(mine, theirs, x)


def test_a_shape_mismatch_names_the_parameter_and_both_shapes(readme: dict) -> None:
    with pytest.raises(ValueError, match=r"weight \(1,\).*weight is \(3,\)"):
        compare.check_layer(readme["PReLU"](), nn.PReLU(num_parameters=3), batch((4, 3)))


def test_an_upstream_gradient_of_another_shape_is_refused(readme: dict) -> None:
    with pytest.raises(compare.LayerCheckError, match=r"output's shape \(4, 5\)"):
        compare.check_layer(readme["PReLU"](), nn.PReLU(), batch((4, 5)), batch((5, 4)))


def test_the_callers_torch_module_is_left_alone(readme: dict) -> None:
    theirs = nn.PReLU(init=0.9)
    report = compare.check_layer(readme["PReLU"](), theirs, batch((4, 5)),
                                 upstream=batch((4, 5), seed=7))
    assert report.ok
    assert theirs.weight.dtype == torch.float32 and theirs.weight.item() == pytest.approx(0.9)
    assert theirs.weight.grad is None


def test_import_compare_leaves_torch_out() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import compare, sys; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
