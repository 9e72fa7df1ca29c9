"""Hostile input to the layer table, its settings and check_layer: every bad value is refused in
one line naming the setting, the flag, the file or the layer; no wrong gradient passes; a correct
layer is not failed for a reason that is not its own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import compare
import scratch
from compare import cli
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


@pytest.mark.parametrize(("call", "says"), [
    (lambda: compare.build_twins("4-3-2", "leaky_relu", settings="abc"),
     "settings must be a mapping of setting names to numbers"),
    (lambda: compare.build_twins("4-3-2", "leaky_relu", settings=[("negative_slope", 0.1)]),
     "settings must be a mapping of setting names to numbers"),
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
], ids=["settings text", "settings list", "activation list", "dtype list", "arch bytes",
        "arch text widths", "negative width", "one width", "float width", "bool width"])
def test_a_bad_network_argument_is_a_user_error(call, says: str) -> None:
    """Never a bare AttributeError or TypeError, never another network than the one meant (bytes
    would read as their character codes: 52-45-51-45-50)."""
    with pytest.raises(compare.UserError, match=says):
        call()


def test_an_architecture_holds_its_widths_as_a_tuple() -> None:
    arch = compare.Architecture([4, 3, 2], "relu")
    assert arch.widths == (4, 3, 2) and hash(arch) == hash(Architecture.parse("4-3-2"))

