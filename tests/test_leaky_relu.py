"""LeakyReLU, the layer added through the layer table alone: its slope set from the CLI and kept
in checkpoints, and every command picking it up (train, lockstep, resume, evaluate, insight,
the yardstick, parity); its settings forgotten in a declaration are refused naming the layer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import scratch
from compare import cli
from compare.harness.arch import Architecture
from compare.harness.twins import WeightMismatchError, build_twins, scratch_state_dict
from compare.training import checkpoint
from tests.helpers import events, train
from tests.test_layer_table import replace_kind
from tests.test_resume import assert_same_run

LEAKY = ["--activation", "leaky_relu", "--negative-slope", "0.2", "--dtype", "float64"]


def test_the_slope_is_used_and_kept(data_dir: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    status, results, err = train(data_dir, tmp_path, *LEAKY, "--lockstep", capsys=capsys)
    assert status == 0, err
    run = tmp_path / "run"
    for twin, suffix in [("scratch", ".npz"), ("torch", ".pt")]:
        saved = checkpoint.read(run / twin / f"checkpoint{suffix}")
        assert saved.meta["activation"] == "leaky_relu"
        assert saved.meta["activation_settings"] == {"negative_slope": 0.2}
        model = checkpoint.network(saved, twin)
        assert model[1].negative_slope == 0.2, f"{twin} rebuilt with the checkpoint's slope"
        assert "DeadUnits/hidden1" in events(run / twin).Tags()["scalars"]
    assert results[0]["test_accuracy"] == pytest.approx(results[1]["test_accuracy"], abs=0)
    assert cli.main(["evaluate", "--checkpoint", str(run / "torch" / "checkpoint.pt"),
                     "--backend", "scratch", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == results[1]["test_accuracy"]


def test_a_leaky_run_resumes_exactly(data_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    assert train(data_dir, tmp_path / "straight", *LEAKY, "--epochs", "3", capsys=capsys)[0] == 0
    assert train(data_dir, tmp_path / "resumed", *LEAKY, "--epochs", "1", capsys=capsys)[0] == 0
    assert cli.main(["train", "--resume", str(tmp_path / "resumed" / "run"), "--epochs", "3"]) == 0
    assert_same_run(tmp_path / "resumed" / "run", tmp_path / "straight" / "run")


def test_the_default_run_name_holds_the_slope(data_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    status = cli.main(["train", "--data-dir", str(data_dir), "--arch", "64-16-10", "--epochs", "1",
                       "--backend", "scratch", "--logdir", str(tmp_path), *LEAKY])
    assert status == 0, capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [
        "mnist-64-16-10-leaky_relu0.2-sgd-lr0.1-bs64-float64-seed0"]


@pytest.mark.parametrize(("args", "message"), [
    (["--activation", "relu", "--negative-slope", "0.2"],
     "--negative-slope: a setting of --activation leaky_relu, not of relu"),
    (["--activation", "leaky_relu", "--negative-slope", "1.5"],
     "--negative-slope 1.5: negative_slope must be in [0, 1]"),
    (["--activation", "leaky_relu", "--negative-slope", "nan"],
     "negative_slope must be a finite number"),
])
def test_bad_slopes_are_refused_naming_the_flag(args: list[str], message: str,
                                                capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["parity", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(("saved", "message"), [
    ({"negative_slope": 5}, r"negative_slope must be in \[0, 1\], got 5"),
    ({"slope": 0.1}, "leaky_relu has no setting 'slope'; its settings: negative_slope"),
    ([0.1], r"activation_settings should be an object, found \[0.1\]"),
])
def test_a_checkpoint_with_bad_settings_is_refused_naming_the_file(
        tmp_path: Path, saved: object, message: str) -> None:
    path = tmp_path / "checkpoint.npz"
    arch = Architecture.parse("6-4-3", "leaky_relu")
    meta = {**arch.to_meta(), "dtype": "float32", "activation_settings": saved}
    checkpoint.save_npz(path, scratch_state_dict(arch.build_scratch(seed=0)), meta)
    with pytest.raises(checkpoint.CheckpointError, match=f"{path}: meta does not describe a "
                                                         f"network .*{message}"):
        checkpoint.network(checkpoint.read(path))


def test_parity_holds_at_any_slope() -> None:
    from compare.harness.parity import run_parity

    for slope in (0.0, 0.2, 1.0):
        arch = Architecture.parse("784-128-64-10", "leaky_relu", {"negative_slope": slope})
        report = run_parity(arch, dtype="float64")
        assert report.ok and report.max_rel_error <= 1e-12, (slope, report.table())


class ForgetfulLeakyReLU(scratch.LeakyReLU):
    """Takes the slope but keeps none: computes with the default."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        del self.negative_slope
        self.slope = 0.01


class DeafLeakyReLU(scratch.LeakyReLU):
    """Ignores the slope it is given."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()


@pytest.mark.parametrize(("layer", "message"), [
    (ForgetfulLeakyReLU, r"layer 1 \(ForgetfulLeakyReLU\): ForgetfulLeakyReLU keeps no "
                         "attribute 'negative_slope'"),
    (DeafLeakyReLU, r"layer 1 \(DeafLeakyReLU\): scratch settings \{'negative_slope': 0.01\} vs "
                    r"torch \{'negative_slope': 0.2\}"),
])
def test_a_setting_the_scratch_layer_drops_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                      layer: type, message: str) -> None:
    replace_kind(monkeypatch, "leaky_relu", scratch=layer)
    arch = Architecture.parse("6-4-3", "leaky_relu", {"negative_slope": 0.2})
    with pytest.raises(WeightMismatchError, match=message):
        build_twins(arch, seed=0)


def test_the_slope_changes_the_gradient() -> None:
    """Not a relabelled ReLU: below 0 the gradient is the slope times the upstream one."""
    layer = scratch.LeakyReLU(0.25)
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(layer.forward(x), [[-0.5, 0.0, 3.0]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.25, 0.25, 1.0]])
