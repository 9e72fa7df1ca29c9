"""A checkpoint edited, crafted or cut short is refused in one line naming the file before any
twin trains: nothing read from a file reaches a kernel unchecked (a fused torch step trusts its
tensors), and the run's settings, not the file's optimizer state, decide how a run goes on."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from compare import cli
from tests.helpers import ARCH
from tests.test_resume import assert_same_run

Edit = Callable[[dict], object]


def train_args(logdir: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(data_dir), "--arch", ARCH, "--batch-size", "32",
            "--val-size", "30", "--logdir", str(logdir), "--run-name", "run", *extra]


OPTIMIZERS = {"adam": ["--optimizer", "adam", "--lr", "0.003"],
              "momentum": ["--optimizer", "momentum", "--lr", "0.05", "--momentum", "0.9"]}


@pytest.fixture(scope="module")
def runs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Finished one-epoch runs of both twins, one per optimizer, and their two-epoch twins."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, flags in OPTIMIZERS.items():
        for epochs in ("1", "2"):
            logdir = root / f"{name}-{epochs}"
            assert cli.main(train_args(logdir, data_dir, *flags, "--epochs", epochs)) == 0
            made[f"{name}-{epochs}"] = logdir / "run"
    return made


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def edit_pt(path: Path, edit: Edit) -> None:
    saved = torch.load(path, weights_only=True)
    edit(saved)
    torch.save(saved, path)


def edit_npz(path: Path, edit: Edit) -> None:
    """``edit({"meta": dict, name: array...})``, written back."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    edit(arrays)
    np.savez(path, **(arrays | {"meta": np.array(json.dumps(arrays["meta"]))}))


def first_state(saved: dict) -> dict:
    return saved["optimizer"]["state"][0]


def amsgrad(saved: dict) -> None:
    saved["optimizer"]["param_groups"][0]["amsgrad"] = True
    for state in saved["optimizer"]["state"].values():
        state["max_exp_avg_sq"] = torch.zeros_like(state["exp_avg_sq"])


TORCH_EDITS = [
    pytest.param("momentum", lambda s: first_state(s).update(momentum_buffer=torch.tensor(0.0)),
                 "momentum_buffer of parameter 0 has shape ()", id="0-dim-momentum-buffer"),
    pytest.param("adam", lambda s: first_state(s).update(exp_avg=torch.tensor(0.0)),
                 "exp_avg of parameter 0 has shape ()", id="0-dim-exp-avg"),
    pytest.param("adam", lambda s: first_state(s).update(
        exp_avg=torch.zeros(1).expand_as(first_state(s)["exp_avg"])),
                 "exp_avg of parameter 0 is not a contiguous tensor", id="stride-0-exp-avg"),
    pytest.param("adam", lambda s: first_state(s).update(
        exp_avg=first_state(s)["exp_avg"].double()),
                 "exp_avg of parameter 0 holds float64", id="float64-exp-avg"),
    pytest.param("adam", lambda s: first_state(s)["exp_avg"].fill_(math.nan),
                 "exp_avg of parameter 0 holds non-finite", id="nan-exp-avg"),
    pytest.param("adam", lambda s: first_state(s).update(step=torch.tensor(math.inf)),
                 "step of parameter 0 is inf", id="adam-step-inf"),
    pytest.param("adam", lambda s: first_state(s).update(step=torch.tensor(-1.0)),
                 "step of parameter 0 is -1.0", id="adam-step-negative"),
    pytest.param("adam", lambda s: first_state(s).update(step=torch.tensor(3.0)),
                 "step of parameter 0 is 3.0, but the run has taken 9 steps",
                 id="adam-step-not-the-runs"),
    pytest.param("adam", lambda s: first_state(s).pop("exp_avg_sq"),
                 "parameter 0 has state ['exp_avg', 'step']", id="adam-without-exp-avg-sq"),
    pytest.param("adam", amsgrad, "max_exp_avg_sq", id="adam-amsgrad"),
    pytest.param("adam", lambda s: s["optimizer"]["state"].pop(3),
                 "it has state for parameters [0, 1, 2]", id="a-parameter-without-state"),
    pytest.param("adam", lambda s: first_state(s)["exp_avg"].requires_grad_(),
                 "exp_avg of parameter 0 is a torch.float32 tensor that is not plain data",
                 id="exp-avg-requiring-a-gradient"),
    pytest.param("adam", lambda s: first_state(s).update(
        exp_avg=first_state(s)["exp_avg"].bfloat16()),
                 "exp_avg of parameter 0 is a torch.bfloat16 tensor", id="bfloat16-exp-avg"),
    pytest.param("adam", lambda s: first_state(s).update(
        step=first_state(s)["step"].bfloat16()), "step of parameter 0", id="bfloat16-step"),
    pytest.param("adam", lambda s: first_state(s)["exp_avg_sq"].fill_(-1.0),
                 "exp_avg_sq of parameter 0 holds negative values", id="negative-exp-avg-sq"),
    pytest.param("adam", lambda s: s.update(optimizer=["not", "a", "state"]),
                 "it holds no per-parameter state", id="optimizer-a-list"),
]


@pytest.mark.parametrize(("optimizer", "edit", "culprit"), TORCH_EDITS)
def test_a_torch_optimizer_state_not_what_torch_makes_is_refused_before_training(
        runs: dict[str, Path], tmp_path: Path, optimizer: str, edit: Edit, culprit: str,
        capsys: pytest.CaptureFixture) -> None:
    """Before: a segfault (exit 139) or memory corruption in the fused step, or training on."""
    run = copy_of(runs[f"{optimizer}-1"], tmp_path)
    edit_pt(run / "torch" / "checkpoint.pt", edit)
    before = (run / "scratch" / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt: its optimizer state does not fit" in err[0], err
    assert culprit in err[0], err
    assert (run / "scratch" / "checkpoint.npz").read_bytes() == before, "scratch trained on"


def set_meta(key: str, value: object) -> Edit:
    def edit(arrays: dict) -> None:
        meta = arrays["meta"]
        *path, last = key.split(".")
        for part in path:
            meta = meta[part]
        meta[last] = value
    return edit


def scratch_step(value: object) -> Edit:
    return lambda arrays: arrays["meta"]["optimizer_scalars"].update(step=value)


SCRATCH_EDITS = [
    pytest.param(scratch_step(-1), "optimizer step is -1", id="scratch-adam-step-negative"),
    pytest.param(scratch_step(1e400), "optimizer step is inf", id="scratch-adam-step-inf"),
    pytest.param(lambda a: a["optimizer/0/exp_avg"].fill(math.nan), "non-finite",
                 id="scratch-nan-exp-avg"),
    pytest.param(set_meta("position.epoch", 1.0), "the position", id="epoch-a-float"),
    pytest.param(set_meta("config.batch_size", 32.0), "the settings", id="batch-size-a-float"),
    pytest.param(set_meta("seed", -1), "the settings", id="seed-negative"),
    pytest.param(set_meta("config.seed", 1), "the settings", id="seed-not-the-datas"),
    pytest.param(set_meta("epoch_seconds", [math.nan]), "the position", id="epoch-seconds-nan"),
    pytest.param(set_meta("epoch_seconds", "abc"), "the position", id="epoch-seconds-a-string"),
    pytest.param(set_meta("train_loss", "low"), "the position", id="train-loss-a-string"),
    pytest.param(set_meta("config.optimizer.settings.weight_decay", math.inf), "the settings",
                 id="weight-decay-inf"),
    pytest.param(lambda a: a.update({"progress/grad_norms": np.zeros(5)}),
                 "progress/grad_norms has shape (5,), not (at most 0 rows, 2)",
                 id="progress-grad-norms-not-a-table"),
    pytest.param(lambda a: [set_meta("position.step", 1)(a), a.update(
        {"progress/losses": np.zeros(1), "progress/grad_norms": np.zeros((1, 3))})],
                 "progress/grad_norms has shape (1, 3)",
                 id="progress-grad-norms-of-3-layers-in-a-2-layer-network"),
    pytest.param(lambda a: [set_meta("position.step", 1)(a), a.update(
        {"progress/losses": np.zeros(1), "progress/grad_norms": np.zeros((1, 2)),
         "progress/update_ratios": np.zeros((1, 3))})],
                 "progress/update_ratios has shape (1, 3)",
                 id="progress-update-ratios-of-3-layers-in-a-2-layer-network"),
    pytest.param(lambda a: a.update({"progress/update_ratios": np.zeros((0, 7))}),
                 "progress/update_ratios has shape (0, 7)", id="progress-no-rows-of-7-layers"),
    pytest.param(lambda a: a.update({"progress/update_ratios": np.zeros((0, 2), np.float32)}),
                 "progress/update_ratios holds float32 values",
                 id="progress-update-ratios-float32"),
    pytest.param(lambda a: [set_meta("position.step", 1)(a), a.update(
        {"progress/losses": np.zeros(1), "progress/grad_norms": np.zeros((1, 2))}),
        a.pop("progress/update_ratios")],
                 "progress/update_ratios is missing",
                 id="progress-a-recorded-step-and-no-update-ratios"),
    pytest.param(lambda a: [set_meta("position.step", 1)(a), a.update(
        {"progress/losses": np.zeros(1), "progress/grad_norms": np.zeros((1, 2)),
         "progress/update_ratios": np.full((1, 2), -np.inf)})],
                 "progress/update_ratios holds non-finite values",
                 id="progress-update-ratios-not-finite"),
    pytest.param(set_meta("position.shuffle_state", None), "the position",
                 id="no-shuffle-state-after-an-epoch"),
    pytest.param(set_meta("config.activation", "tanh"), "the settings",
                 id="config-activation-not-the-networks"),
    pytest.param(set_meta("format", 3), "meta 'format' 3", id="format-from-elsewhere"),
    pytest.param(set_meta("train_loss", -5.0), "the position", id="negative-train-loss"),
    pytest.param(set_meta("position.seconds", 1e308), "the position", id="seconds-1e308"),
    pytest.param(set_meta("config.optimizer.settings.weight_decay", 1e30), "the settings",
                 id="weight-decay-train-refuses"),
    pytest.param(lambda a: a["optimizer/0/exp_avg_sq"].fill(-1.0), "holds negative values",
                 id="scratch-negative-exp-avg-sq"),
]


@pytest.mark.parametrize(("edit", "culprit"), SCRATCH_EDITS)
def test_a_scratch_checkpoint_not_what_this_program_writes_is_refused(
        runs: dict[str, Path], tmp_path: Path, edit: Edit, culprit: str,
        capsys: pytest.CaptureFixture) -> None:
    run = copy_of(runs["adam-1"], tmp_path)
    edit_npz(run / "scratch" / "checkpoint.npz", edit)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "2", "--json"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "scratch/checkpoint.npz: " in err[0] and culprit in err[0], err
    assert captured.out == "", "no result from a refused resume"


def test_the_runs_settings_not_the_files_optimizer_settings_decide(
        runs: dict[str, Path], tmp_path: Path) -> None:
    """The torch file's momentum, weight decay and maximize are edited: the resumed run is the
    straight run, bit for bit (before: torch took them from the file and parted ways)."""
    run = copy_of(runs["momentum-1"], tmp_path)
    edit_pt(run / "torch" / "checkpoint.pt", lambda s: s["optimizer"]["param_groups"][0].update(
        momentum=0.5, weight_decay=0.1, maximize=True, lr=7.0))
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert_same_run(run, runs["momentum-2"])


def test_a_checkpoint_from_before_the_update_ratios_resumes_at_an_epochs_end(
        runs: dict[str, Path], tmp_path: Path) -> None:
    """Checkpoints written before ``progress/update_ratios`` existed lack it; at an epoch's end
    they recorded no step, so the run goes on as the straight one."""
    run = copy_of(runs["adam-1"], tmp_path)
    edit_npz(run / "scratch" / "checkpoint.npz", lambda arrays: arrays.pop(
        "progress/update_ratios"))
    edit_pt(run / "torch" / "checkpoint.pt", lambda saved: saved["progress"].pop(
        "update_ratios"))
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert_same_run(run, runs["adam-2"])


def test_a_divergence_in_the_first_resumed_epoch_names_the_checkpoints_position(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_of(runs["adam-1"], tmp_path)
    edit_npz(run / "scratch" / "checkpoint.npz",
             lambda arrays: arrays["0.weight"].fill(3e38))  # x·W overflows: a NaN loss
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "scratch: " in line and "(epoch 1, step 0)" in line, line


# ---------------------------------------------------------------- evaluate


def evaluate(path: Path, *extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", str(path), *extra]


def test_evaluate_refuses_weights_whose_test_loss_is_not_finite(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Finite weights of 3e38 overflow float32: before, ``test loss nan`` with exit 0 and each
    twin a different accuracy."""
    run = copy_of(runs["adam-1"], tmp_path)
    path = run / "scratch" / "checkpoint.npz"
    edit_npz(path, lambda arrays: arrays["2.weight"].fill(3e38))
    for backend in ("scratch", "torch"):
        capsys.readouterr()
        assert cli.main(evaluate(path, "--backend", backend, "--json")) == 2
        captured = capsys.readouterr()
        assert captured.out == "", captured.out
        assert "checkpoint.npz: its weights give a test loss of nan" in captured.err, captured.err


@pytest.mark.parametrize(("dtype", "shown"), [(">f8", ">f8"), (np.longdouble, "float128")])
def test_evaluate_refuses_weights_not_of_the_runs_dtype(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, dtype: object,
        shown: str) -> None:
    """Big-endian or long-double weights under ``--backend torch``: before, an internal error."""
    run = copy_of(runs["adam-1"], tmp_path)
    path = run / "scratch" / "checkpoint.npz"
    edit_npz(path, lambda arrays: arrays.update(
        {name: array.astype(dtype) for name, array in arrays.items() if "." in name and
         "/" not in name}, meta=arrays["meta"] | {"dtype": "float64"}))
    capsys.readouterr()
    assert cli.main(evaluate(path, "--backend", "torch")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"0.weight holds {shown} values" in err[0], err


def test_evaluate_refuses_an_epoch_that_is_not_a_count(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_of(runs["adam-1"], tmp_path)
    path = run / "scratch" / "checkpoint.npz"
    edit_npz(path, set_meta("epoch", math.nan))
    capsys.readouterr()
    assert cli.main(evaluate(path)) == 2
    assert "meta 'epoch' should be a count of epochs, found nan" in capsys.readouterr().err


def fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "checkpoint.npz")
    return tmp / "checkpoint.npz"


def folder(tmp: Path) -> Path:
    (tmp / "checkpoint.npz").mkdir()
    return tmp / "checkpoint.npz"


def symlink_loop(tmp: Path) -> Path:
    (tmp / "checkpoint.npz").symlink_to(tmp / "checkpoint.npz")
    return tmp / "checkpoint.npz"


@pytest.mark.parametrize(("make", "said"), [
    (fifo, "not a regular file"), (folder, "a folder, not a checkpoint file"),
    (symlink_loop, "Too many levels of symbolic links")])
def test_a_checkpoint_path_that_is_no_file_says_what_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture, make: Callable[[Path], Path],
        said: str) -> None:
    path = make(tmp_path)
    capsys.readouterr()
    assert cli.main(evaluate(path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and said in err[0], err
