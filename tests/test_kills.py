"""A run killed at any point (SIGKILL: no handler runs) stays resumable, and its resume ends
exactly where the straight run ends: the same weights bit for bit, every TensorBoard point once,
no temporary file left. Each kill lands at a chosen call (tests/kill_at.py), not after a sleep.

``MLP_TWINS_RANDOM_KILLS=N`` adds a soak: N kills at random moments of ``train --backend both``
and of its resumes, for --backend both and --lockstep (about 20 minutes for 20; off by default)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from compare import cli
from compare.training.summary import has_summary
from tests.helpers import ARCH
from tests.test_resume import assert_same_run

KILL_AT = Path(__file__).with_name("kill_at.py")
CHECKPOINTS = "compare.training.checkpoint_writer"
EVENTS = "compare.training.events"
SUMMARY = "compare.training.summary"


def train_args(data_dir: Path, logdir: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(data_dir), "--arch", ARCH, "--batch-size", "32",
            "--val-size", "30", "--optimizer", "adam", "--lr", "0.003",
            "--logdir", str(logdir), "--run-name", "run", *extra]


def killed(module: str, attribute: str, call: int, args: list[str]) -> None:
    """Run ``compare ARGS`` in a process SIGKILLed before the ``call``-th call of
    ``module.attribute``; fail if it was not."""
    done = subprocess.run([sys.executable, str(KILL_AT), module, attribute, str(call), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, f"not killed ({done.returncode}): {done.stderr}"


def resume(run: Path, *extra: str) -> int:
    return cli.main(["train", "--resume", str(run), *extra])


def repeated_points(run: Path) -> list[tuple[str, str, int]]:
    """(TensorBoard run, tag, step) written more than once in the event files of ``run``'s
    folders (each folder is one TensorBoard run: scratch, torch, parity)."""
    counts = Counter((path.parent.name, value.tag, event.step) for path in run.rglob("*tfevents*")
                     for event in EventFileLoader(str(path)).Load()
                     for value in event.summary.value)
    return [point for point, count in counts.items() if count > 1]


def assert_whole(run: Path, straight: Path, twins: tuple[str, ...]) -> None:
    """``run`` ended as ``straight`` did, with no point twice and no temporary file."""
    assert_same_run(run, straight, twins)
    assert not repeated_points(run), f"repeated TensorBoard points: {repeated_points(run)[:5]}"
    leftovers = list(run.rglob(".*"))
    assert not leftovers, f"left behind: {leftovers}"


@pytest.fixture(scope="module")
def straight(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Straight runs to compare with, by mode: 2 epochs of scratch, of both twins, of both in
    --lockstep (float64), and 3 epochs of both."""
    root = tmp_path_factory.mktemp("straight")
    modes = {"scratch": ["--backend", "scratch", "--epochs", "2"],
             "both": ["--epochs", "2"], "both-3": ["--epochs", "3"],
             "lockstep": ["--lockstep", "--dtype", "float64", "--epochs", "2"]}
    for mode, flags in modes.items():
        assert cli.main(train_args(data_dir, root / mode, *flags)) == 0, mode
    return {mode: root / mode / "run" for mode in modes}


@pytest.mark.parametrize("point", [
    # the epoch's scalars are flushed, its checkpoint (the 2nd save; the 1st is epoch 0's) is
    # not written: the resume trains the epoch again and logs none of its points twice
    pytest.param((CHECKPOINTS, "CheckpointWriter.save", 2, None, False),
                 id="after-events-before-checkpoint"),
    pytest.param((EVENTS, "TwinEvents.finish", 1, "*.summary", False), id="before-the-summary"),
    pytest.param((SUMMARY, "publish_summary", 1, None, False), id="moving-the-summary-in"),
    # the 2nd rename is epoch 1's checkpoint replacing epoch 0's: the temporary file is whole
    pytest.param(("os", "replace", 2, ".checkpoint.npz.*.tmp", True), id="in-a-checkpoint-write"),
])
def test_a_scratch_run_killed_at_a_chosen_point_resumes_exactly(
        data_dir: Path, tmp_path: Path, straight: dict[str, Path],
        point: tuple[str, str, int, str | None, bool]) -> None:
    """Killed before the ``call``-th call of ``module.attribute`` (``left``: files that the kill
    must have left, or not, in the twin's folder, to show it landed where meant)."""
    module, attribute, call, left, is_left = point
    killed(module, attribute, call,
           train_args(data_dir, tmp_path, "--backend", "scratch", "--epochs", "2"))
    if left is not None:
        found = list((tmp_path / "run" / "scratch").glob(left))
        assert bool(found) == is_left, f"the kill did not land where meant: {left} {found}"
    assert resume(tmp_path / "run") == 0
    assert_whole(tmp_path / "run", straight["scratch"], ("scratch",))
    assert resume(tmp_path / "run") == 2, "a finished run is refused"


def test_a_kill_between_the_twins_of_a_longer_resume_stays_resumable(
        data_dir: Path, tmp_path: Path, straight: dict[str, Path]) -> None:
    """``--resume --epochs 3`` of a finished 2-epoch run: scratch trains epoch 3 and saves with
    the new total, torch is killed before its save. Both later resumes continue it."""
    assert cli.main(train_args(data_dir, tmp_path, "--epochs", "2")) == 0
    killed(CHECKPOINTS, "CheckpointWriter.save", 2,
           ["train", "--resume", str(tmp_path / "run"), "--epochs", "3"])
    assert resume(tmp_path / "run") == 0
    assert_whole(tmp_path / "run", straight["both-3"], ("scratch", "torch"))


@pytest.mark.parametrize("save", [2, 4], ids=["before-torch-first-save", "between-epoch-1-saves"])
def test_a_lockstep_run_killed_between_its_twins_saves_continues_together(
        data_dir: Path, tmp_path: Path, straight: dict[str, Path], save: int) -> None:
    """Saves 1 and 2 are the twins' epoch-0 checkpoints, 3 and 4 their epoch-1 ones: a kill
    before 2 leaves torch without a checkpoint, before 4 scratch an epoch ahead of torch."""
    killed(CHECKPOINTS, "CheckpointWriter.save", save,
           train_args(data_dir, tmp_path, "--lockstep", "--dtype", "float64", "--epochs", "2"))
    assert resume(tmp_path / "run") == 0
    assert_whole(tmp_path / "run", straight["lockstep"], ("scratch", "torch"))


def test_a_lockstep_run_killed_twice_between_its_twins_saves_continues_together(
        data_dir: Path, tmp_path: Path, straight: dict[str, Path]) -> None:
    """Killed before torch's epoch-1 save, then its resume killed at the same point: scratch
    went back to epoch 0 for the first resume, so the second finds the same state again."""
    killed(CHECKPOINTS, "CheckpointWriter.save", 4,
           train_args(data_dir, tmp_path, "--lockstep", "--dtype", "float64", "--epochs", "2"))
    killed(CHECKPOINTS, "CheckpointWriter.save", 2, ["train", "--resume", str(tmp_path / "run")])
    assert resume(tmp_path / "run") == 0
    assert_whole(tmp_path / "run", straight["lockstep"], ("scratch", "torch"))


def test_a_twin_killed_in_its_first_checkpoint_write_leaves_no_temporary_file(
        data_dir: Path, tmp_path: Path, straight: dict[str, Path]) -> None:
    """Renames 1 and 2 are the twins' first checkpoints, scratch's then torch's: torch has no
    checkpoint, only its temporary file, and starts again on resume."""
    killed("os", "replace", 2, train_args(data_dir, tmp_path, "--epochs", "2"))
    assert list((tmp_path / "run" / "torch").glob(".checkpoint.pt.*.tmp")), "no temporary file"
    assert resume(tmp_path / "run") == 0
    assert_whole(tmp_path / "run", straight["both"], ("scratch", "torch"))


def kill_randomly(args: list[str], rng: random.Random, longest: float | None) -> bool:
    """Run ``compare ARGS`` and, once it has started working (its first line of output, after
    the imports), SIGKILL it after a random time under ``longest`` seconds (never when None);
    whether it finished first."""
    process = subprocess.Popen([sys.executable, "-m", "compare", *args], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()
    try:
        _, err = process.communicate(timeout=None if longest is None else
                                     rng.uniform(0, longest))
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.communicate()
        return False
    assert process.returncode == 0, f"exit {process.returncode}: {err}"
    return True


def finished(run: Path) -> bool:
    return all(has_summary(run / twin) for twin in ("scratch", "torch"))


@pytest.mark.skipif(not os.environ.get("MLP_TWINS_RANDOM_KILLS"),
                    reason="a soak of about 20 minutes: set MLP_TWINS_RANDOM_KILLS=20 to run it")
@pytest.mark.parametrize("mode", [["--batch-size", "4"],
                                  ["--batch-size", "1", "--lockstep", "--dtype", "float64"]],
                         ids=["both", "lockstep"])
def test_random_kills_during_training_and_resumes(data_dir: Path, tmp_path: Path,
                                                   mode: list[str]) -> None:
    """N kills of fresh ``train --backend both`` runs and N of their resumes, each at a random
    moment of its work, every killed run resumed until it finishes. A run killed before its
    first checkpoint was never resumable (nothing was promised yet): it is started again."""
    flags = ("--epochs", "3", *mode)  # small batches: long enough that training dominates
    assert cli.main(train_args(data_dir, tmp_path / "straight", *flags)) == 0
    rng, wanted = random.Random(0), int(os.environ["MLP_TWINS_RANDOM_KILLS"])
    started = time.perf_counter()
    assert kill_randomly(train_args(data_dir, tmp_path / "timing", *flags), rng, None)
    longest = time.perf_counter() - started
    fresh = resumed = unborn = rounds = 0
    while fresh < wanted or resumed < wanted:
        logdir = tmp_path / f"round-{rounds}"
        rounds += 1
        if kill_randomly(train_args(data_dir, logdir, *flags), rng, longest):
            continue
        fresh += 1
        if not list((logdir / "run").glob("*/checkpoint.*")):
            unborn += 1
            continue
        while not finished(logdir / "run"):
            resumed += not kill_randomly(["train", "--resume", str(logdir / "run")], rng, longest)
        assert_whole(logdir / "run", tmp_path / "straight" / "run", ("scratch", "torch"))
    print(f"{fresh} kills of fresh runs ({unborn} before the first checkpoint) and {resumed} of "
          f"resumes, {rounds} runs; a run trains for {longest:.1f} s")
