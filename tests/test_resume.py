"""Resume: a run continued from its checkpoints ends exactly where the straight run ends (weights
bit for bit, TensorBoard scalars step for step), whether it stopped at an epoch's end or in the
middle of one (Ctrl-C)."""

from __future__ import annotations

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

from compare import cli
from compare.harness.twins import StateDict
from compare.training import checkpoint, loop
from compare.training.config import EpochOrders, check_shuffle_state
from compare.training.scratch_backend import ScratchBackend
from compare.training.torch_backend import TorchBackend
from tests.helpers import ARCH, events, train

TWINS = {"scratch": ".npz", "torch": ".pt"}
OPTIMIZERS = {"sgd": ["--optimizer", "sgd", "--lr", "0.1"],
              "momentum": ["--optimizer", "momentum", "--lr", "0.05", "--nesterov"],
              "adam": ["--optimizer", "adam", "--lr", "0.003", "--weight-decay", "0.001"]}


def weights(run_dir: Path, twin: str) -> StateDict:
    return checkpoint.read(run_dir / twin / f"checkpoint{TWINS[twin]}").state


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar but the timings, as (step, value) lists in step order (a resumed run's events
    are in a second file, which may be read first)."""
    run = events(folder)
    return {tag: sorted((e.step, e.value) for e in run.Scalars(tag))
            for tag in run.Tags()["scalars"] if not tag.startswith("Time/")}


def assert_same_run(resumed: Path, straight: Path, twins: tuple[str, ...] = tuple(TWINS)) -> None:
    for twin in twins:
        a, b = weights(resumed, twin), weights(straight, twin)
        different = [name for name in b if not np.array_equal(a[name], b[name])]
        assert not different, f"{twin}: {different} differ after resuming (np.array_equal)"
        assert scalars(resumed / twin) == scalars(straight / twin), f"{twin} scalars differ"
    if (straight / "parity").exists():
        assert scalars(resumed / "parity") == scalars(straight / "parity"), "parity differs"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_two_epochs_and_two_more_is_four_epochs(data_dir: Path, tmp_path: Path, optimizer: str,
                                                dtype: str, capsys: pytest.CaptureFixture
                                                ) -> None:
    """Both twins, so each case covers two of the twelve (twin, optimizer, dtype)."""
    flags = [*OPTIMIZERS[optimizer], "--dtype", dtype]
    assert train(data_dir, tmp_path / "straight", *flags, "--epochs", "4", capsys=capsys)[0] == 0
    assert train(data_dir, tmp_path / "resumed", *flags, "--epochs", "2", capsys=capsys)[0] == 0
    assert cli.main(["train", "--resume", str(tmp_path / "resumed" / "run"), "--epochs", "4"]) == 0
    assert_same_run(tmp_path / "resumed" / "run", tmp_path / "straight" / "run")


class StopAfterSteps:
    """Stands in for the Ctrl-C handler: asks to stop once ``steps`` training steps have run."""

    steps = 0

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> StopAfterSteps:
        StopAfterSteps.current = self
        return self

    def __exit__(self, *_: object) -> None:
        pass


def count_steps(monkeypatch: pytest.MonkeyPatch, stop_after: int) -> None:
    """Make every twin's train_step tick the stand-in handler."""
    taken = []
    for backend in (ScratchBackend, TorchBackend):
        def step(self, x, y, original=backend.train_step) -> None:
            original(self, x, y)
            taken.append(1)
            if len(taken) == stop_after:
                StopAfterSteps.current.requested = True
        monkeypatch.setattr(backend, "train_step", step)


@pytest.mark.parametrize(("stop_after", "mode"), [
    (5, []), (9, []), (22, []),  # mid-epoch, at an epoch's end, in torch's run (9 steps an epoch)
    (7, ["--lockstep", "--dtype", "float64"])])  # mid-epoch: both twins, 7 steps between them
def test_ctrl_c_mid_epoch_then_resume_is_exact(data_dir: Path, tmp_path: Path, stop_after: int,
                                               mode: list[str], capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    flags = ["--optimizer", "adam", "--lr", "0.003", "--epochs", "3", *mode]
    assert train(data_dir, tmp_path / "straight", *flags, capsys=capsys)[0] == 0
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", StopAfterSteps)
        count_steps(patch, stop_after)
        status, results, err = train(data_dir, tmp_path / "resumed", *flags, capsys=capsys)
    assert status == 130 and results == [], err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted: ") and "resume with: python -m compare train --resume" \
        in line, err
    assert cli.main(["train", "--resume", str(tmp_path / "resumed" / "run")]) == 0
    assert_same_run(tmp_path / "resumed" / "run", tmp_path / "straight" / "run")


def interrupted_scratch_run(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                            monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch run (9 steps an epoch, every step recorded) stopped after step 7 of epoch 1,
    and beside it the straight run ("straight/run")."""
    flags = ["--backend", "scratch", "--optimizer", "adam", "--lr", "0.003", "--epochs", "2"]
    assert train(data_dir, tmp_path / "straight", *flags, capsys=capsys)[0] == 0
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", StopAfterSteps)
        count_steps(patch, 7)
        assert train(data_dir, tmp_path / "resumed", *flags, capsys=capsys)[0] == 130
    return tmp_path / "resumed" / "run"


def with_update_ratios(path: Path, make: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    """Rewrite the scratch checkpoint at ``path`` with ``make(grad_norms, update_ratios)`` as
    its update ratios."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["progress/update_ratios"] = make(arrays["progress/grad_norms"],
                                            arrays["progress/update_ratios"])
    np.savez(path, **arrays)


def test_a_checkpoint_with_an_update_ratio_for_every_recorded_step_resumes_exactly(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The versions before the ratios were measured at every third recorded step saved a row
    for each recorded step: the rows of steps 3 and 6 (of the 7 recorded) are the ones kept."""
    run = interrupted_scratch_run(data_dir, tmp_path, capsys, monkeypatch)

    def every_recorded_step(norms: np.ndarray, ratios: np.ndarray) -> np.ndarray:
        assert norms.shape == (7, 2) and ratios.shape == (2, 2), (norms.shape, ratios.shape)
        rows = np.full_like(norms, 5.0)  # what the other steps measured: not kept
        rows[[2, 5]] = ratios
        return rows

    with_update_ratios(run / "scratch" / "checkpoint.npz", every_recorded_step)
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, tmp_path / "straight" / "run", twins=("scratch",))


def test_update_ratio_rows_that_no_version_writes_are_refused_before_training(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three rows for the 7 steps taken: neither 2 (measured) nor 7 (recorded)."""
    run = interrupted_scratch_run(data_dir, tmp_path, capsys, monkeypatch)
    path = run / "scratch" / "checkpoint.npz"
    with_update_ratios(path, lambda norms, ratios: norms[:3])
    before = path.read_bytes()
    assert cli.main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "checkpoint.npz: progress/update_ratios holds 3 rows, but the 7 steps taken of epoch 1 "
        "recorded 2"), err
    assert path.read_bytes() == before, "nothing trained"


def test_lockstep_run_resumes_exactly(data_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    flags = ["--lockstep", "--dtype", "float64", "--optimizer", "momentum", "--lr", "0.05"]
    assert train(data_dir, tmp_path / "straight", *flags, "--epochs", "4", capsys=capsys)[0] == 0
    assert train(data_dir, tmp_path / "resumed", *flags, "--epochs", "2", capsys=capsys)[0] == 0
    assert cli.main(["train", "--resume", str(tmp_path / "resumed" / "run"), "--epochs", "4"]) == 0
    assert_same_run(tmp_path / "resumed" / "run", tmp_path / "straight" / "run")


def test_a_real_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    command = [sys.executable, "-m", "compare", "train", "--backend", "scratch", "--data-dir",
               str(data_dir), "--arch", ARCH, "--epochs", "100000", "--batch-size", "8",
               "--logdir", str(tmp_path), "--run-name", "run"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONUNBUFFERED": "1"})
    first = process.stdout.readline() + process.stdout.readline()  # the data line, epoch 1
    assert "epoch 1/100000" in first, first + process.stderr.read()
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "resume with" in err, err
    saved = checkpoint.read(tmp_path / "run" / "scratch" / "checkpoint.npz")
    done = saved.meta["position"]["epoch"]
    assert done >= 1
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--epochs", str(done + 1)]) == 0


def test_ctrl_c_in_a_longer_resume_leaves_both_twins_at_one_position(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--resume --epochs 3`` of a finished 1-epoch run, stopped mid-epoch: both twins stopped
    at the same step and saved there, and the run goes on to what 3 straight epochs leave."""
    flags = ["--optimizer", "adam", "--lr", "0.003"]
    assert train(data_dir, tmp_path / "straight", *flags, "--epochs", "3", capsys=capsys)[0] == 0
    assert train(data_dir, tmp_path / "resumed", *flags, "--epochs", "1", capsys=capsys)[0] == 0
    run = tmp_path / "resumed" / "run"
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", StopAfterSteps)
        count_steps(patch, 13)  # scratch's 7th step, in epoch 2 of 9 steps
        assert cli.main(["train", "--resume", str(run), "--epochs", "3"]) == 130
    positions = {checkpoint.read(run / twin / f"checkpoint{suffix}").meta["position"]["step"]
                 for twin, suffix in TWINS.items()}
    assert positions == {7}, f"the twins stopped at steps {positions}"
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, tmp_path / "straight" / "run")


def test_both_twins_step_on_each_batch_in_turn(data_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One loop: scratch's step, then torch's, batch after batch (not one twin's whole run
    after the other's)."""
    taken = []
    for backend in (ScratchBackend, TorchBackend):
        def step(self, x, y, original=backend.train_step) -> None:
            taken.append(self.name)
            original(self, x, y)
        monkeypatch.setattr(backend, "train_step", step)
    assert train(data_dir, tmp_path, capsys=capsys)[0] == 0
    assert taken == ["scratch", "torch"] * 18, taken[:20]  # 2 epochs of 9 steps


def test_twins_at_different_positions_are_refused_in_one_line(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """What an earlier version, which trained the twins one after the other, left when
    interrupted between them: scratch two epochs on, torch one, no checkpoint to go back to."""
    assert train(data_dir, tmp_path, "--epochs", "2", capsys=capsys)[0] == 0
    run = tmp_path / "run"
    os.replace(run / "torch" / "checkpoint-previous.pt", run / "torch" / "checkpoint.pt")
    (run / "scratch" / "checkpoint-previous.npz").unlink()
    assert cli.main(["train", "--resume", str(run), "--epochs", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different positions (scratch at epoch 2 step 0, torch at epoch 1" \
        in err[0], err


def test_a_shuffle_state_is_checked_without_setting_it() -> None:
    orders = EpochOrders(1000, 3)
    for _ in range(5):
        check_shuffle_state(json.loads(json.dumps(orders.state())))  # as a checkpoint keeps it
        orders.next()
    state = orders.state()
    for bad in ["garbage", None, {**state, "bit_generator": "MT19937"}, {**state, "has_uint32": 2},
                {**state, "state": {"state": -1, "inc": 1}}, {**state, "uinteger": 2**32},
                {**state, "state": {"state": 1.0, "inc": 1}}, {**state, "extra": 0}]:
        with pytest.raises(ValueError, match="not a PCG64 state"):
            check_shuffle_state(bad)


def test_a_checkpoint_file_given_to_resume_is_refused_naming_its_run_folder(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train(data_dir, tmp_path, "--backend", "scratch", "--epochs", "1",
                 capsys=capsys)[0] == 0
    path = tmp_path / "run" / "scratch" / "checkpoint.npz"
    assert cli.main(["train", "--resume", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --resume {path}: a file; give the run folder ({tmp_path / 'run'})"]
