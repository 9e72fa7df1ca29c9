"""Hostile input: every case ends with one line on stderr naming the culprit, the documented exit
status (2: bad input or environment, 1: a failed check or divergence, 130: Ctrl-C), no traceback,
and nothing lost: no half-made run folder, no checkpoint replaced by a worse one."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from compare import cli
from compare.data import FILES
from compare.training import checkpoint
from tests.helpers import ARCH, write_idx

Setup = Callable[[Path, Path], list[str]]  # (tmp_path, data_dir) -> the command's arguments


def train_args(*extra: str) -> Setup:
    """``compare train`` on the 8x8 dataset, logging into tmp/runs, plus ``extra``."""
    return lambda tmp, data: ["train", "--data-dir", str(data), "--arch", ARCH, "--epochs", "1",
                              "--batch-size", "32", "--val-size", "30", "--logdir",
                              str(tmp / "runs"), "--run-name", "run", *extra]


def dataset_without(role: str) -> Setup:
    """A copy of the 8x8 dataset whose ``role`` file holds zero images (header and labels)."""
    def setup(tmp: Path, data: Path) -> list[str]:
        folder = tmp / "data"
        folder.mkdir()
        for path in (data / "MNIST" / "raw").iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        images, labels = FILES[f"{role}_images"], FILES[f"{role}_labels"]
        (folder / f"{images}.gz").unlink()
        (folder / f"{labels}.gz").unlink()
        write_idx(folder / images, np.zeros((0, 8, 8), np.uint8))
        write_idx(folder / labels, np.zeros(0, np.uint8))
        return train_args()(tmp, folder)
    return setup


def folder_in_place_of(role: str) -> Setup:
    def setup(tmp: Path, data: Path) -> list[str]:
        folder = tmp / "data"
        folder.mkdir()
        for path in (data / "MNIST" / "raw").iterdir():
            (folder / path.name).mkdir() if path.name.startswith(FILES[role]) else (
                folder / path.name).write_bytes(path.read_bytes())
        return ["train", "--data-dir", str(folder), "--arch", ARCH, "--logdir",
                str(tmp / "runs")]
    return setup


GOOD_META = {"arch": "4-3", "activation": "relu", "dtype": "float64", "dataset": "mnist",
             "data_dir": "/nowhere", "val_size": 0, "seed": 0, "mean": 0.1, "std": 0.3,
             "format": 2}
GOOD_STATE = {"0.weight": np.zeros((3, 4)), "0.bias": np.zeros(3)}


def crafted_checkpoint(meta: object = None, **state: np.ndarray) -> Setup:
    """``compare evaluate`` of an .npz written by hand: ``meta`` as given (GOOD_META when None),
    the good state with ``state`` replacing entries."""
    def setup(tmp: Path, data: Path) -> list[str]:
        path = tmp / "checkpoint.npz"
        arrays = GOOD_STATE | state
        np.savez(path, meta=np.array(json.dumps(GOOD_META if meta is None else meta)), **arrays)
        return ["evaluate", "--checkpoint", str(path)]
    return setup


def without(key: str) -> dict:
    return {k: v for k, v in GOOD_META.items() if k != key}


def logdir_under_a_file(tmp: Path, data: Path) -> list[str]:
    (tmp / "afile").write_text("not a folder")
    return train_args()(tmp, data)[:-4] + ["--logdir", str(tmp / "afile" / "runs")]


def logdir_is_a_file(tmp: Path, data: Path) -> list[str]:
    (tmp / "afile").write_text("not a folder")
    return [*train_args()(tmp, data)[:-4], "--logdir", str(tmp / "afile")]


def finished_run(tmp: Path, data: Path, *extra: str) -> Path:
    assert cli.main(train_args("--backend", "scratch")(tmp, data)) == 0
    return tmp / "runs" / "run"


def resume_with(*extra: str) -> Setup:
    return lambda tmp, data: ["train", "--resume", str(finished_run(tmp, data)), *extra]


def edited_run(edit: Callable[[dict], object]) -> Setup:
    """``train --resume`` of a finished one-epoch scratch run whose checkpoint meta was edited by
    hand with ``edit(meta)``."""
    def setup(tmp: Path, data: Path) -> list[str]:
        run = finished_run(tmp, data)
        path = run / "scratch" / "checkpoint.npz"
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
        edit(meta)
        np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
        return ["train", "--resume", str(run), "--epochs", "2"]
    return setup


def small_dataset_lesson(tmp: Path, data: Path) -> list[str]:
    return ["lesson", "width", "--dataset", "mnist", "--data-dir", str(data), "--logdir",
            str(tmp / "runs")]


CASES = [
    # flags, each refused before any work
    pytest.param(train_args("--momentum", "-1", "--optimizer", "momentum"), 2, "--momentum",
                 id="momentum-negative"),
    pytest.param(train_args("--momentum", "nan", "--optimizer", "momentum"), 2, "--momentum",
                 id="momentum-nan"),
    pytest.param(train_args("--momentum", "1.5", "--optimizer", "momentum"), 2, "--momentum",
                 id="momentum-over-1"),
    pytest.param(train_args("--momentum", "0.5"), 2, "--momentum", id="momentum-with-sgd"),
    pytest.param(train_args("--nesterov", "--optimizer", "adam"), 2, "--nesterov",
                 id="nesterov-with-adam"),
    pytest.param(train_args("--weight-decay", "-5"), 2, "--weight-decay", id="weight-decay"),
    pytest.param(train_args("--weight-decay", "inf"), 2, "--weight-decay", id="weight-decay-inf"),
    pytest.param(train_args("--seed", "-1"), 2, "--seed", id="seed-negative"),
    pytest.param(train_args("--seed", "x"), 2, "--seed", id="seed-text"),
    pytest.param(train_args("--lr", "nan"), 2, "--lr", id="lr-nan"),
    pytest.param(train_args("--lr", "inf"), 2, "--lr", id="lr-inf"),
    pytest.param(train_args("--lr", "-0.1"), 2, "--lr", id="lr-negative"),
    pytest.param(train_args("--epochs", "0"), 2, "--epochs", id="epochs-zero"),
    pytest.param(train_args("--batch-size", "-3"), 2, "--batch-size", id="batch-negative"),
    pytest.param(train_args("--val-size", "-1"), 2, "--val-size", id="val-size-negative"),
    pytest.param(train_args("--val-size", "300"), 2, "--val-size", id="val-size-whole-file"),
    pytest.param(train_args("--dtype", "float16"), 2, "--dtype", id="dtype"),
    pytest.param(train_args("--activation", "gelu"), 2, "--activation", id="activation"),
    pytest.param(train_args("--arch", "64-16-5"), 2, "--arch 64-16-5: the last width",
                 id="arch-fewer-outputs-than-classes"),
    pytest.param(train_args("--arch", "100-16-10"), 2, "--arch 100-16-10: the input width",
                 id="arch-wrong-input"),
    pytest.param(train_args("--arch", "64-10000000-10"), 2, "--arch 64-10000000-10",
                 id="arch-too-big-for-memory"),
    pytest.param(lambda tmp, data: ["parity", "--batch-size", "1000000000"], 2, "--batch-size",
                 id="parity-batch-too-big"),
    pytest.param(train_args("--backend", "scratch", "--lockstep"), 2, "--lockstep",
                 id="lockstep-one-twin"),
    pytest.param(train_args("--dataset", "mnist-sample"), 2, "--data-dir",
                 id="sample-with-data-dir"),
    pytest.param(lambda tmp, data: ["bench", "--backends", "jax"], 2, "--backends",
                 id="bench-backends"),
    pytest.param(lambda tmp, data: ["bench", "--batch-sizes", "0,32"], 2, "--batch-sizes",
                 id="bench-batch-sizes"),
    # run names and folders
    pytest.param(lambda tmp, data: train_args()(tmp, data)[:-1] + ["../escape"], 2, "--run-name",
                 id="run-name-parent"),
    pytest.param(lambda tmp, data: train_args()(tmp, data)[:-1] + ["/tmp/abs"], 2, "--run-name",
                 id="run-name-absolute"),
    pytest.param(lambda tmp, data: train_args()(tmp, data)[:-1] + [".."], 2, "--run-name",
                 id="run-name-dot-dot"),
    pytest.param(lambda tmp, data: train_args()(tmp, data)[:-1] + ["x" * 300], 2, "--run-name",
                 id="run-name-300-characters"),
    pytest.param(logdir_is_a_file, 2, "--logdir", id="logdir-is-a-file"),
    pytest.param(logdir_under_a_file, 2, "afile", id="logdir-under-a-file"),
    # data
    pytest.param(dataset_without("test"), 2, "t10k-images-idx3-ubyte: holds no images",
                 id="test-file-with-no-images"),
    pytest.param(dataset_without("train"), 2, "train-images-idx3-ubyte: holds no images",
                 id="train-file-with-no-images"),
    pytest.param(folder_in_place_of("train_labels"), 2, "train-labels-idx1-ubyte.gz: is a folder",
                 id="folder-in-place-of-a-file"),
    # checkpoints
    pytest.param(crafted_checkpoint(["arch", "4-3"]), 2, "meta is a list", id="meta-a-list"),
    pytest.param(crafted_checkpoint(without("arch")), 2, "meta 'arch'", id="meta-lacks-arch"),
    pytest.param(crafted_checkpoint(without("dataset")), 2, "meta 'dataset'",
                 id="meta-lacks-dataset"),
    pytest.param(crafted_checkpoint(GOOD_META | {"dtype": "float16"}), 2, "meta dtype 'float16'",
                 id="meta-dtype-unknown"),
    pytest.param(crafted_checkpoint(GOOD_META | {"dataset": "cifar"}), 2, "meta dataset 'cifar'",
                 id="meta-dataset-unknown"),
    pytest.param(crafted_checkpoint(GOOD_META | {"seed": "zero"}), 2, "meta 'seed'",
                 id="meta-seed-a-string"),
    pytest.param(crafted_checkpoint(**{"0.weight": np.zeros((3, 4), complex)}), 2,
                 "0.weight holds complex128", id="complex-weights"),
    pytest.param(crafted_checkpoint(**{"0.weight": np.full((3, 4), "w")}), 2, "0.weight holds <U1",
                 id="string-weights"),
    pytest.param(crafted_checkpoint(**{"0.bias": np.array([0.0, np.nan, 0.0])}), 2,
                 "0.bias holds non-finite weights", id="nan-weights"),
    pytest.param(crafted_checkpoint(GOOD_META | {"arch": "4-100000-100000-3"}), 2,
                 "checkpoint.npz: meta --arch 4-100000-100000-3: its network would need",
                 id="meta-network-too-big-for-memory"),
    pytest.param(crafted_checkpoint(**{"0.weight": np.zeros((4, 3))}), 2,
                 "0.weight should have shape (3, 4)", id="transposed-weights"),
    # resume
    pytest.param(lambda tmp, data: ["train", "--resume", str(tmp / "none")], 2, "--resume",
                 id="resume-no-folder"),
    pytest.param(lambda tmp, data: ["train", "--resume", str(tmp)], 2, "holds no checkpoint",
                 id="resume-empty-folder"),
    pytest.param(resume_with("--lr", "0.5"), 2, "--lr cannot be changed", id="resume-new-lr"),
    pytest.param(resume_with(), 2, "already trained its 1 epochs", id="resume-finished-run"),
    pytest.param(resume_with("--lr", "0.1"), 2, "--lr cannot be changed",
                 id="resume-lr-equal-to-the-default"),
    pytest.param(edited_run(lambda m: m["position"].pop("shuffle_state")), 2,
                 "meta 'config' or 'position'", id="resume-position-lacks-a-key"),
    pytest.param(edited_run(lambda m: m["position"].update(epoch=-1)), 2, "the position",
                 id="resume-negative-epoch"),
    pytest.param(edited_run(lambda m: m["position"].update(step=10**9)), 2,
                 "progress/losses has shape (0,), not (1000000000,)",
                 id="resume-step-without-its-losses"),
    pytest.param(edited_run(lambda m: m["position"].update(shuffle_state="garbage")), 2,
                 "meta 'config' or 'position'", id="resume-garbage-shuffle-state"),
    pytest.param(edited_run(lambda m: m["config"].update(batch_size=0)), 2, "the settings",
                 id="resume-batch-size-zero"),
    pytest.param(edited_run(lambda m: m["config"]["optimizer"].update(name="bogus")), 2,
                 "the settings", id="resume-unknown-optimizer"),
    pytest.param(edited_run(lambda m: m["config"]["optimizer"].update(settings={"bogus": 1})),
                 2, "meta 'config' or 'position'", id="resume-unknown-optimizer-setting"),
    pytest.param(edited_run(lambda m: m.update(backends=["bogus"])), 2, "the twins",
                 id="resume-unknown-twin"),
    pytest.param(edited_run(lambda m: m.update(lockstep=True)), 2, "the twins",
                 id="resume-lockstep-with-one-twin"),
    pytest.param(edited_run(lambda m: m.update(val_size=10**6)), 2,
                 "its run kept 1000000 validation images", id="resume-data-changed"),
    pytest.param(edited_run(lambda m: m.update(lesson="width")), 2,
                 "a run of lesson 'width': it can be evaluated but not resumed",
                 id="resume-a-lesson-run"),
    # lessons
    pytest.param(lambda tmp, data: ["lesson", "width", "--logdir", logdir_is_a_file(tmp, data)[-1]],
                 2, "--logdir", id="lesson-logdir-is-a-file"),
    pytest.param(small_dataset_lesson, 2, "the lessons need at least 2000",
                 id="lesson-on-too-little-data"),
    pytest.param(lambda tmp, data: ["lesson", "--list", "width"], 2, "--list",
                 id="lesson-list-with-a-name"),
]


@pytest.mark.parametrize(("setup", "status", "culprit"), CASES)
def test_bad_input_is_one_line_naming_the_culprit(setup: Setup, status: int, culprit: str,
                                                  data_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    args = setup(tmp_path, data_dir)
    capsys.readouterr()
    assert cli.main(args) == status
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], err
    runs = tmp_path / "runs"
    if args[0] == "train" and "--resume" not in args:
        assert not runs.exists() or not any(runs.iterdir()), "a refused run left a folder"


# ---------------------------------------------------------------- divergence: finite or stop


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("batch_size", ["20000", "32"])  # the epoch's one step, or many
def test_divergence_stops_naming_twin_epoch_step_and_lr(backend: str, batch_size: str,
                                                        data_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    args = train_args("--backend", backend, "--lr", "1e30", "--batch-size", batch_size,
                      "--epochs", "3", "--json")(tmp_path, data_dir)
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == "", "no result object for a diverged run"
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith(f"error: {backend}: ") and "epoch 1, step" in line and "1e+30" in line
    saved = checkpoint.read(next((tmp_path / "runs" / "run" / backend).glob("checkpoint.*")))
    assert saved.meta["epoch"] == 0, "the checkpoint left is the last finite one"


def test_evaluate_json_is_strict_json(data_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    assert cli.main(train_args("--backend", "scratch")(tmp_path, data_dir)) == 0
    capsys.readouterr()
    path = tmp_path / "runs" / "run" / "scratch" / "checkpoint.npz"
    assert cli.main(["evaluate", "--checkpoint", str(path), "--json"]) == 0

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    report = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert 0 <= report["test_accuracy"] <= 1


def test_a_full_disk_keeps_the_last_checkpoint(data_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The epoch-1 checkpoint cannot be written: one line naming the file; epoch 0's stays."""
    original = checkpoint.write_atomically
    calls = []

    def full_after_first(path: Path, write: Callable) -> None:
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(path, write)

    monkeypatch.setattr(checkpoint, "write_atomically", full_after_first)
    assert cli.main(train_args("--backend", "scratch")(tmp_path, data_dir)) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "checkpoint.npz: No space left on device" in line
    saved = checkpoint.read(tmp_path / "runs" / "run" / "scratch" / "checkpoint.npz")
    assert saved.meta["epoch"] == 0


# ---------------------------------------------------------------- runs are never mixed


def test_two_runs_started_together_never_share_a_folder(data_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "compare", *train_args("--backend", "scratch")(
        tmp_path, data_dir)]
    for _ in range(10):
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    folders = sorted(path.name for path in (tmp_path / "runs").iterdir())
    assert len(folders) == 20
    for folder in folders:
        assert len(list((tmp_path / "runs" / folder / "scratch").glob("*.tfevents.*"))) == 2


# ---------------------------------------------------------------- the bench never hangs


def bench(data_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "compare", "bench", "--data-dir", str(data_dir), "--arch",
               ARCH, "--repeats", "100000", "--batch-sizes", "32", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})


def workers_of(process: subprocess.Popen) -> list[int]:
    """The bench's worker processes, once both answer (the first repeat is logged)."""
    line = process.stdout.readline()
    assert line.startswith("repeat 1/"), line + process.stderr.read()
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [int(pid) for pid in children  # not multiprocessing's resource tracker
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(("how", "timeout", "expected"), [
    (signal.SIGKILL, "25", "the process died"), (signal.SIGSTOP, "8", "no answer within 8 s")])
def test_a_dead_or_silent_bench_worker_ends_the_bench(data_dir: Path, how: int, timeout: str,
                                                      expected: str) -> None:
    process = bench(data_dir, "--timeout", timeout)
    workers = workers_of(process)
    os.kill(workers[0], how)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "batch 32" in lines[0], err
    assert lines[0].split(":")[1].strip().split()[0] in ("scratch", "torch"), err
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text(
        ).split()[2], "a worker outlived the bench"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_ends_the_bench_and_its_workers(data_dir: Path) -> None:
    process = bench(data_dir)
    workers = workers_of(process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip().splitlines() == [
        "interrupted: Ctrl-C"], err
    time.sleep(0.5)
    assert not any(Path(f"/proc/{pid}/cmdline").exists() and Path(
        f"/proc/{pid}/cmdline").read_bytes() for pid in workers), "a worker outlived the bench"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown without CUDA")
def test_evaluate_on_cuda_without_a_gpu(data_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    assert cli.main(train_args("--backend", "torch")(tmp_path, data_dir)) == 0
    path = tmp_path / "runs" / "run" / "torch" / "checkpoint.pt"
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(path), "--device", "cuda"]) == 2
    assert "--device cuda" in capsys.readouterr().err


def test_a_resume_with_epochs_equal_to_the_default_continues(data_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    """``--epochs 10`` is the default value, and given: the one-epoch run goes on to 10."""
    run = finished_run(tmp_path, data_dir)
    assert cli.main(["train", "--resume", str(run), "--epochs", "10"]) == 0
    assert checkpoint.read(run / "scratch" / "checkpoint.npz").meta["epoch"] == 10


def test_a_run_being_trained_cannot_be_resumed_beside_it(data_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    from compare.training.run_dir import run_lock

    run = finished_run(tmp_path, data_dir)
    capsys.readouterr()
    with run_lock(run):  # as another process training it would
        assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert "another process is training this run" in capsys.readouterr().err
    assert checkpoint.read(run / "scratch" / "checkpoint.npz").meta["epoch"] == 1


def test_a_bad_torch_optimizer_state_is_refused_before_either_twin_trains(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(train_args("--optimizer", "adam", "--lr", "0.001")(tmp_path, data_dir)) == 0
    run = tmp_path / "runs" / "run"
    saved = torch.load(run / "torch" / "checkpoint.pt", weights_only=True)
    saved["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)  # a crash in the fused step
    torch.save(saved, run / "torch" / "checkpoint.pt")
    before = (run / "scratch" / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: its optimizer state does not fit" in err and "exp_avg" in err, err
    assert (run / "scratch" / "checkpoint.npz").read_bytes() == before, "scratch trained on"


def test_lesson_list_json_is_strict_json(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["lesson", "--list", "--json"]) == 0
    claims = json.loads(capsys.readouterr().out)
    assert "vanishing-gradients" in claims and all(claims.values())


def test_ctrl_c_stops_the_neuron_lesson(tmp_path: Path) -> None:
    from compare.errors import InterruptionError
    from compare.lessons import LESSONS
    from compare.lessons.base import LessonContext
    from compare.training.interrupt import StopRequest

    stop = StopRequest()
    stop.requested = True  # as the first Ctrl-C sets it
    with pytest.raises(InterruptionError, match="stopped by Ctrl-C in epoch 1"):
        LESSONS["neuron-vs-layer"].run(LessonContext("neuron-vs-layer", ["scratch"], None,
                                                     "mnist-sample", tmp_path, 0, stop))
