"""Hostile input to the layer table, its settings and check_layer: every bad value is refused in
one line naming the setting, the flag, the file or the layer; no wrong gradient passes; a correct
layer is not failed for a reason that is not its own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import compare
import scratch
from compare import cli
from compare.harness import tolerance
from compare.harness.arch import Architecture
from compare.harness.twins import scratch_state_dict
from compare.layers import ACTIVATIONS
from compare.training import checkpoint

SLOPE = ACTIVATIONS["leaky_relu"].settings[0]


@pytest.mark.parametrize(("value", "says"), [
    (10 ** 400, "must be a finite number, got 1000"),
    (-10 ** 400, "must be a finite number, got -1000"),
    ("0.1", "must be a finite number, got '0.1'"),
    (True, "must be a finite number, got True"),
], ids=["huge", "minus huge", "text", "bool"])
def test_a_setting_that_is_no_finite_number_is_refused(value: object, says: str) -> None:
    with pytest.raises(ValueError, match=f"negative_slope {says}") as caught:
        SLOPE.check(value)
    assert len(str(caught.value)) < 200, "a huge number is shortened in the message"


@pytest.mark.parametrize("value", [np.float32(0.5), np.float64(0.5), np.int64(0), 1, -0.0])
def test_a_setting_of_any_real_type_is_a_plain_float(value: object) -> None:
    checked = SLOPE.check(value)
    assert type(checked) is float and checked == float(value)
    assert math.copysign(1.0, checked) == 1.0, "-0.0 reads as 0 (not '-0' in names)"


def test_minus_zero_is_named_as_zero() -> None:
    arch = Architecture.parse("4-3-2", "leaky_relu", {"negative_slope": -0.0})
    assert arch.activation_label == "leaky_relu(negative_slope=0)"


@pytest.mark.parametrize(("text", "says"), [
    ("1.0000000001", "--negative-slope 1.0000000001: negative_slope must be in [0, 1]"),
    ("-1e-320", "--negative-slope -1e-320: negative_slope must be in [0, 1]"),
])
def test_a_refused_slope_is_shown_as_given(text: str, says: str,
                                           capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["parity", "--arch", "4-3-2", "--activation", "leaky_relu",
                     f"--negative-slope={text}"]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def saved_leaky(tmp_path: Path, settings: object, suffix: str) -> Path:
    """A checkpoint of a 6-4-3 leaky_relu network whose meta holds ``settings`` (or none, for
    ``...``)."""
    arch = Architecture.parse("6-4-3", "leaky_relu", {"negative_slope": 0.2})
    meta = {**arch.to_meta(), "dtype": "float32"}
    if settings is ...:
        del meta["activation_settings"]
    else:
        meta["activation_settings"] = settings
    state = scratch_state_dict(arch.build_scratch(seed=0))
    path = tmp_path / f"checkpoint{suffix}"
    if suffix == ".npz":
        checkpoint.save_npz(path, state, meta)
    else:
        checkpoint.save_pt(path, {name: torch.from_numpy(a) for name, a in state.items()}, meta)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
@pytest.mark.parametrize(("settings", "says"), [
    ({"negative_slope": 10 ** 400}, "negative_slope must be a finite number"),
    (..., "activation_settings lacks negative_slope, a setting of leaky_relu"),
    ({}, "activation_settings lacks negative_slope, a setting of leaky_relu"),
], ids=["huge integer", "missing", "empty"])
def test_a_checkpoint_with_hostile_settings_is_refused(tmp_path: Path, suffix: str,
                                                       settings: object, says: str) -> None:
    """Never an internal error, never the default slope in place of the one trained with."""
    path = saved_leaky(tmp_path, settings, suffix)
    with pytest.raises(checkpoint.CheckpointError,
                       match=f"{path}: meta does not describe a network .*{says}"):
        checkpoint.network(checkpoint.read(path))


def test_meta_of_an_activation_without_settings_needs_none() -> None:
    meta = {"arch": "6-4-3", "activation": "relu"}
    assert Architecture.from_meta(meta) == Architecture.parse("6-4-3", "relu")


@pytest.mark.parametrize("slope", [np.float64(0.2), np.float32(0.2), 1])
def test_a_leaky_relu_keeps_float32_whatever_its_slope_type(slope: object) -> None:
    layer = scratch.LeakyReLU(slope)
    x = np.array([[-1.0, 2.0]], dtype=np.float32)
    assert layer.forward(x).dtype == layer.backward(x).dtype == np.float32


@pytest.mark.parametrize("slope", ["0.1", None, [0.1]])
def test_a_leaky_relu_refuses_a_slope_that_is_no_number(slope: object) -> None:
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        scratch.LeakyReLU(slope)


def test_evaluate_of_a_huge_slope_is_a_user_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    path = saved_leaky(tmp_path, {"negative_slope": 10 ** 400}, ".npz")
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and str(path) in err and len(err.splitlines()) == 1, err


class PReLU(scratch.Module):
    """The README's PReLU: one learned slope, as torch.nn.PReLU()."""

    def __init__(self) -> None:
        self.weight = scratch.Parameter.of(np.full(1, 0.25))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.maximum(x, 0) + self.weight.value * np.minimum(x, 0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self.weight.grad[:] = np.sum(grad_out * np.minimum(self.x, 0))
        return grad_out * np.where(self.x > 0, 1, self.weight.value)


def batch(shape: tuple[int, ...] = (4, 5), dtype: type = np.float64) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


class ForwardGivesNone(PReLU):
    def forward(self, x: np.ndarray) -> None:
        super().forward(x)


class ForwardGivesList(PReLU):
    def forward(self, x: np.ndarray) -> list:
        return super().forward(x).tolist()


class BackwardGivesNone(PReLU):
    def backward(self, grad_out: np.ndarray) -> None:
        super().backward(grad_out)


class GradBecomesNone(PReLU):
    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        dx = super().backward(grad_out)
        self.weight.grad = None
        return dx


@pytest.mark.parametrize(("layer", "says"), [
    (ForwardGivesNone, "ForwardGivesNone: forward returned a NoneType, not a NumPy array"),
    (ForwardGivesList, "ForwardGivesList: forward returned a list, not a NumPy array"),
    (BackwardGivesNone, "BackwardGivesNone: backward returned a NoneType, not a NumPy array"),
    (GradBecomesNone, "GradBecomesNone: backward left weight.grad a NoneType, not a NumPy array"),
])
def test_a_layer_that_returns_no_array_is_refused_by_name(layer: type, says: str) -> None:
    with pytest.raises(compare.LayerCheckError, match=says):
        compare.check_layer(layer(), nn.PReLU(), batch())


@pytest.mark.parametrize("seed", [-1, 1.5, "a", True, None])
def test_a_bad_seed_is_refused_naming_it(seed: object) -> None:
    with pytest.raises(compare.UserError, match="seed must be a whole number >= 0"):
        compare.check_layer(PReLU(), nn.PReLU(), batch(), seed=seed)


class Accumulating(PReLU):
    """Adds to .grad, as torch does, where a scratch backward writes it: the optimizer would
    step on the sum of every batch's gradients."""

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self.weight.grad += np.sum(grad_out * np.minimum(self.x, 0))
        return grad_out * np.where(self.x > 0, 1, self.weight.value)


def test_a_backward_that_accumulates_the_gradient_fails() -> None:
    report = compare.check_layer(Accumulating(), nn.PReLU(), batch())
    failing = {(row.section, row.tensor) for row in report.rows if not row.ok}
    assert ("grad(upstream)", "dweight") in failing, report.table()


def test_a_frozen_torch_parameter_still_gets_its_gradient() -> None:
    theirs = nn.PReLU()
    theirs.weight.requires_grad_(False)
    report = compare.check_layer(PReLU(), theirs, batch())
    assert report.ok, report.table()
    assert not theirs.weight.requires_grad, "the caller's module is left alone"


class Logged(scratch.Linear):
    """A Linear of one's own: a subclass of the table's class, the same math."""


@pytest.mark.parametrize("sizes", [(5, 3), (5, 5)])
def test_a_subclass_of_a_table_layer_keeps_its_kind(sizes: tuple[int, int]) -> None:
    mine = Logged(*sizes, rng=np.random.default_rng(0), dtype=np.float64)
    report = compare.check_layer(mine, nn.Linear(*sizes), batch((4, sizes[0])))
    assert report.ok, report.table()
    assert {row.tensor for row in report.rows} >= {"dW", "db"}


def test_twins_in_different_modes_are_refused() -> None:
    with pytest.raises(compare.LayerCheckError,
                       match=r"1 ReLU: scratch is in training mode, torch in evaluation mode"):
        compare.check_layer(scratch.Sequential(scratch.Identity(), scratch.ReLU()),
                            nn.Sequential(nn.Identity(), nn.ReLU().eval()), batch())


class Noisy(PReLU):
    """Adds fresh noise on every call, as a dropout layer in training mode does."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return super().forward(x) + np.random.default_rng().standard_normal(x.shape) * 1e-3


def test_a_random_forward_pass_is_refused_as_such() -> None:
    with pytest.raises(compare.LayerCheckError, match="Noisy: two forward passes of the same x "
                                                      "differ"):
        compare.check_layer(Noisy(), nn.PReLU(), batch())


def test_a_nan_upstream_is_refused_as_not_finite() -> None:
    with pytest.raises(compare.LayerCheckError, match=r"upstream holds NaN or infinity$"):
        compare.check_layer(PReLU(), nn.PReLU(), batch(), np.full((4, 5), np.nan))


@pytest.mark.parametrize(("call", "says"), [
    (lambda: compare.build_twins("4-3-2", "leaky_relu", settings="abc"),
     "settings must be a mapping of setting names to numbers"),
    (lambda: compare.build_twins("4-3-2", "leaky_relu", settings=[("negative_slope", 0.1)]),
     "settings must be a mapping of setting names to numbers"),
    (lambda: compare.build_twins("4-3-2", "leaky_relu", settings={1: 0.1, "x": 0.2}),
     "leaky_relu has no setting 'x'; its settings: negative_slope"),
    (lambda: compare.build_twins("4-3-2", ["relu"]), r"--activation \['relu'\]: choose from"),
    (lambda: compare.check_parity("4-3-2", dtype=["float64"]),
     r"--dtype \['float64'\]: choose from"),
    (lambda: compare.build_twins(b"4-3-2"), "arch must be an Architecture"),
    (lambda: compare.build_twins(("4", 3, 2)), "arch must be an Architecture"),
    (lambda: compare.build_twins(compare.Architecture((4, -3, 2), "relu")),
     r"--arch \(4, -3, 2\): expected positive widths"),
    (lambda: compare.check_parity(compare.Architecture((4,), "relu")),
     r"--arch \(4,\): expected positive widths"),
    (lambda: compare.build_twins(compare.Architecture((4.0, 3, 2), "relu")),
     r"--arch \(4.0, 3, 2\): expected positive widths"),
    (lambda: compare.build_twins(compare.Architecture((True, 2), "relu")),
     r"--arch \(True, 2\): expected positive widths"),
], ids=["settings text", "settings list", "settings keys", "activation list", "dtype list",
        "arch bytes", "arch text widths", "negative width", "one width", "float width",
        "bool width"])
def test_a_bad_network_argument_is_a_user_error(call, says: str) -> None:
    """Never a bare AttributeError or TypeError, never another network than the one meant (bytes
    would read as their character codes: 52-45-51-45-50)."""
    with pytest.raises(compare.UserError, match=says):
        call()


def test_an_architecture_holds_its_widths_as_a_tuple() -> None:
    arch = compare.Architecture([4, 3, 2], "relu")
    assert arch.widths == (4, 3, 2) and hash(arch) == hash(Architecture.parse("4-3-2"))


class ClosedGateReLU(scratch.Module):
    """A ReLU whose gate is open at 0 (``x >= 0``), where torch's is closed: right everywhere
    but at the kink."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.maximum(x, 0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * (self.x >= 0)


def test_a_gradient_wrong_only_at_the_kink_fails_on_an_x_that_reaches_it() -> None:
    x = batch((6, 8))
    x[::2, ::3] = 0.0
    report = compare.check_layer(ClosedGateReLU(), nn.ReLU(), x)
    row = next(r for r in report.rows if (r.section, r.tensor) == ("grad(upstream)", "dX"))
    assert not row.ok and row.mismatches == 9 and x[row.worst] == 0


class Counted(PReLU):
    """Counts the batches it saw in a buffer, as BatchNorm1d's ``num_batches_tracked``."""

    buffer_names = ("num_batches_tracked",)

    def __init__(self, count: object) -> None:
        super().__init__()
        self.num_batches_tracked = count


class CountingPReLU(nn.PReLU):
    """torch's PReLU with the same buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.int64))


@pytest.mark.parametrize(("count", "says"), [
    (0, "Counted: buffer_names lists num_batches_tracked, of type int, not a NumPy array"),
    (None, "Counted: buffer_names lists num_batches_tracked, of type NoneType, not a NumPy array"),
])
def test_a_buffer_that_is_no_array_is_refused_by_name(count: object, says: str) -> None:
    with pytest.raises(compare.LayerCheckError, match=says):
        compare.check_layer(Counted(count), CountingPReLU(), batch())


def test_a_buffer_that_is_an_array_is_compared() -> None:
    report = compare.check_layer(Counted(np.zeros((), dtype=np.int64)), CountingPReLU(), batch())
    assert report.ok, report.table()


def test_an_empty_sequential_writes_no_gradient() -> None:
    assert scratch.Sequential().backward_parameters(np.ones((2, 3))) is None


class FirstBatchOnly(PReLU):
    """Keeps the first x it is given: its backward is right for that batch alone."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = getattr(self, "x", x)
        return np.maximum(x, 0) + self.weight.value * np.minimum(x, 0)


def test_a_layer_that_keeps_an_earlier_batch_fails() -> None:
    report = compare.check_layer(FirstBatchOnly(), nn.PReLU(), batch())
    failing = {(row.section, row.tensor) for row in report.rows if not row.ok}
    assert {("grad(upstream)", "dweight"), ("grad(upstream)", "dX")} <= failing, report.table()


class Residual(scratch.Module):
    """``x[:, :m] + tanh(x·W + b)``: a layer of one's own holding a table layer (a Linear)."""

    def __init__(self, n: int, m: int) -> None:
        self.lin = scratch.Linear(n, m, rng=np.random.default_rng(0), dtype=np.float64)
        self.act = scratch.Tanh()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x[:, :self.lin.out_features] + self.act.forward(self.lin.forward(x))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        dx = self.lin.backward(self.act.backward(grad_out))
        dx[:, :self.lin.out_features] += grad_out
        return dx


class TorchResidual(nn.Module):
    def __init__(self, n: int, m: int) -> None:
        super().__init__()
        self.lin, self.act = nn.Linear(n, m), nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :self.lin.out_features] + self.act(self.lin(x))


@pytest.mark.parametrize("sizes", [(5, 3), (5, 5)])
def test_a_table_layer_inside_a_layer_of_ones_own_keeps_its_layout(sizes: tuple[int, int]
                                                                   ) -> None:
    """The Linear's weight is transposed on its way to torch, as a Linear alone is."""
    report = compare.check_layer(Residual(*sizes), TorchResidual(*sizes), batch((4, 5)))
    assert report.ok, report.table()
    assert {row.tensor for row in report.rows} >= {"dlin.weight", "dlin.bias"}


class Aliased(scratch.Module):
    """PReLU holding its weight's value and gradient under short names as well (an optimizer
    updates a value in place, so an alias stays the parameter's)."""

    def __init__(self, dtype: type) -> None:
        self.weight = scratch.Parameter.of(np.full(1, 0.25, dtype=dtype))
        self.slope, self.slope_grad = self.weight.value, self.weight.grad

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.maximum(x, 0) + self.slope * np.minimum(x, 0)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self.slope_grad[:] = np.sum(grad_out * np.minimum(self.x, 0))
        return grad_out * np.where(self.x > 0, 1, self.slope)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_layer_that_aliases_its_parameter_passes(dtype: type) -> None:
    """The finite differences' float64 copy keeps the aliases: it perturbs the array the layer
    computes with, and reads the gradient it writes."""
    report = compare.check_layer(Aliased(dtype), nn.PReLU(), batch(dtype=dtype))
    assert report.ok, report.table()


def test_an_infinite_entry_does_not_open_the_tolerance_of_the_others() -> None:
    """max|b| over the finite entries: one inf in torch's tensor leaves every other entry judged,
    and a finite answer where torch's is infinite is wrong."""
    expected = np.array([np.inf, 1.0, -np.inf])
    for tol in (tolerance.FLOAT64, tolerance.FLOAT32):
        assert list(tol.mismatches(np.array([np.inf, 5.0, -np.inf]), expected)) == [
            False, True, False], tol.name
        assert list(tol.mismatches(np.array([1e308, 1.0, -np.inf]), expected)) == [
            True, False, False], tol.name
    assert tolerance.errors(np.array([np.inf, 1.5, -np.inf]), expected) == (0.5, 0.5)


class Exp(scratch.Module):
    """y = exp(x), which overflows for x > 709."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            self.y = np.exp(x)
        return self.y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * self.y


class TorchExp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


def test_an_output_that_overflows_is_refused_as_such() -> None:
    """Finite differences of an infinite loss measure nothing: said, rather than NaN rows."""
    x = batch()
    x[2, 3] = 800.0
    with pytest.raises(compare.LayerCheckError, match=r"the loss is inf for this x: "):
        compare.check_layer(Exp(), TorchExp(), x, upstream=np.ones((4, 5)))


class Doubled(scratch.Module):
    """y = 2x."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return 2 * x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return 2 * grad_out


class TorchPair(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 2 * x, x


class TorchDetached(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x.detach()


@pytest.mark.parametrize(("module", "says"), [
    (TorchPair(), "0 Doubled: torch's TorchPair returned a tuple, not a tensor"),
    (TorchDetached(), "0 Doubled: torch's TorchDetached returned a tensor autograd cannot "
                      "differentiate"),
])
def test_a_torch_module_without_a_gradient_is_refused_by_name(module: nn.Module,
                                                              says: str) -> None:
    with pytest.raises(compare.LayerCheckError, match=says):
        compare.check_layer(scratch.Sequential(Doubled()), nn.Sequential(module), batch())


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_checks_run_under_a_callers_no_grad(context) -> None:
    """A script (a notebook cell) under torch.no_grad() or inference_mode() still gets its
    check: autograd is the check's own business."""
    layer = scratch.Linear(4, 2, rng=np.random.default_rng(0), dtype=np.float64)
    with context():
        assert compare.check_layer(layer, nn.Linear(4, 2), batch((3, 4))).ok
        assert compare.check_parity("4-3-2", batch_size=2).ok


@pytest.mark.parametrize("upstream", [np.full((4, 5), None), np.full((4, 5), 1 + 1j),
                                      np.full((4, 5), "1")], ids=["object", "complex", "text"])
def test_an_upstream_of_no_real_numbers_is_refused(upstream: np.ndarray) -> None:
    with pytest.raises(compare.LayerCheckError, match="upstream must hold real numbers, got"):
        compare.check_layer(PReLU(), nn.PReLU(), batch(), upstream)
