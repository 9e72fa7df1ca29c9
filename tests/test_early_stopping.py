"""Early stopping (``--patience N``, ``TrainConfig.patience``): the run stops once N epochs pass
without a lower validation loss, keeps the best epoch's weights in ``checkpoint-best``, which
``compare evaluate`` reads like the last, and a resumed run counts on from where it stood.

The data: the 8x8 patterns of the other training tests with 40% of the training labels
(validation split included) redrawn at random, so that the network first learns the patterns
and then memorizes the noise: the validation loss falls, then rises (best epoch 7 of the
straight run below, not 1, so the counting is exercised).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from compare import cli
from compare.data import Splits, load_splits
from compare.harness.arch import Architecture
from compare.harness.tolerance import TRAINING_LOCKSTEP_FLOAT64_MAX_REL
from compare.training import checkpoint, early_stopping, loop
from compare.training.config import SettingsError, TrainConfig
from compare.training.fit import fit
from compare.training.history import History
from compare.training.optimizers import OptimizerSpec
from tests.helpers import ARCH, IMAGE_SIDE, events, learnable_images, train, write_dataset
from tests.test_faults_checkpoint import edit_npz, set_meta
from tests.test_kills import CHECKPOINTS, EVENTS, assert_whole, killed
from tests.test_resume import StopAfterSteps, assert_same_run, count_steps

EPOCHS, PATIENCE, VAL_SIZE, BATCH_SIZE = 20, 3, 40, 16
STEPS_PER_EPOCH = (200 - VAL_SIZE) // BATCH_SIZE
RUN = ["--epochs", str(EPOCHS), "--batch-size", str(BATCH_SIZE), "--val-size", str(VAL_SIZE),
       "--dtype", "float64", "--no-insight"]
"""float64: the twins' validation losses agree to the last digits, so they share a best epoch
on any machine."""
CONFIG = TrainConfig(Architecture.parse(ARCH, "relu"), OptimizerSpec.create("sgd", 0.1),
                     epochs=EPOCHS, batch_size=BATCH_SIZE, dtype="float64")
SUFFIXES = {"scratch": ".npz", "torch": ".pt"}


@pytest.fixture(scope="module")
def noisy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 training images, 40% of their labels redrawn, and 50 clean test images."""
    rng = np.random.default_rng(1)
    templates = rng.integers(0, 256, (10, IMAGE_SIDE, IMAGE_SIDE))
    (train_x, train_y), (test_x, test_y) = (learnable_images(n, rng, templates) for n in (200, 50))
    redrawn = rng.random(len(train_y)) < 0.4
    train_y[redrawn] = rng.integers(0, 10, redrawn.sum())
    root = tmp_path_factory.mktemp("noisy")
    write_dataset(root / "MNIST" / "raw", {"train_images": train_x, "train_labels": train_y,
                                           "test_images": test_x, "test_labels": test_y}, gz=True)
    return root


@pytest.fixture(scope="module")
def splits(noisy_dir: Path) -> Splits:
    return load_splits(noisy_dir, val_size=VAL_SIZE, dtype=np.float64)


def expected_stop(val_losses: list[float], patience: int) -> tuple[int, int]:
    """(the epoch a run with these validation losses stops after, its best epoch), by the rule
    written out again: the best is the first epoch of the lowest loss so far; stop once
    ``patience`` epochs have passed since it."""
    best = 1
    for epoch in range(1, len(val_losses) + 1):
        if val_losses[epoch - 1] < val_losses[best - 1]:
            best = epoch
        if epoch - best >= patience:
            return epoch, best
    return len(val_losses), best


def val_losses(history: object) -> list[float]:
    return [record.validation.loss for record in history.epochs]


@pytest.fixture(scope="module")
def straight(splits: Splits) -> list[float]:
    """The validation losses of all 20 epochs, without early stopping (float64, scratch)."""
    return val_losses(fit(splits, CONFIG, backend="scratch", insight=False)["scratch"])


@pytest.mark.parametrize("patience", [1, 2, 4])
def test_the_run_stops_once_the_validation_loss_has_not_improved_for_patience_epochs(
        splits: Splits, straight: list[float], patience: int) -> None:
    """At the epoch the rule gives for the losses of the run that did not stop, with its best
    epoch, and the same epochs before, bit for bit."""
    stop, best = expected_stop(straight, patience)
    assert stop < EPOCHS and best > 1, "the data should make the run stop after a best epoch > 1"
    history = fit(splits, dataclasses.replace(CONFIG, patience=patience), backend="scratch",
                  insight=False)["scratch"]
    assert len(history.epochs) == stop and history.stopped_early
    assert val_losses(history) == straight[:stop]
    assert (history.best_epoch, history.best_val_loss) == (best, straight[best - 1])
    assert history.test is not None, "a stopped run is tested (its last weights)"


def test_both_twins_in_lockstep_stop_together(splits: Splits, straight: list[float]) -> None:
    """float64: the twins' validation losses agree (to the --lockstep bound), so their bests do."""
    stop, best = expected_stop(straight, PATIENCE)
    history = fit(splits, dataclasses.replace(CONFIG, patience=PATIENCE), insight=False,
                  lockstep=True)
    for twin in history.values():
        assert (len(twin.epochs), twin.best_epoch, twin.stopped_early) == (stop, best, True), \
            twin.backend
        limit = TRAINING_LOCKSTEP_FLOAT64_MAX_REL
        assert val_losses(twin) == pytest.approx(straight[:stop], rel=limit), \
            f"{twin.backend}: validation losses apart by more than {limit:g} relative (float64)"


def test_without_patience_nothing_changes(splits: Splits) -> None:
    history = fit(splits, dataclasses.replace(CONFIG, epochs=2), backend="scratch",
                  insight=False)["scratch"]
    assert (history.best_epoch, history.best_val_loss, history.stopped_early) == (None, None,
                                                                                 False)


def test_a_run_that_never_runs_out_of_patience_trains_every_epoch(
        splits: Splits, straight: list[float]) -> None:
    history = fit(splits, dataclasses.replace(CONFIG, epochs=6, patience=PATIENCE),
                  backend="scratch", insight=False)["scratch"]
    assert len(history.epochs) == 6 and not history.stopped_early
    assert history.best_epoch == expected_stop(straight[:6], PATIENCE)[1]


def test_only_a_strictly_lower_validation_loss_is_a_better_epoch() -> None:
    history = History("scratch", "cpu")
    assert [early_stopping.record(history, epoch, loss) for epoch, loss in
            enumerate([2.0, 2.0, 1.5, 1.7, 1.5], start=1)] == [True, False, True, False, False]
    assert (history.best_epoch, history.best_val_loss) == (3, 1.5), "a tie keeps the first"
    assert early_stopping.to_meta(history, 5) == {"best_epoch": 3, "best_val_loss": 1.5,
                                                  "epochs_without_improvement": 2}
    assert [early_stopping.out_of_patience(3, 5, patience) for patience in (1, 2, 3, None)] == [
        True, True, False, False]


def test_the_run_stops_when_every_twin_is_out_of_patience_not_the_first() -> None:
    """The twins' own bests may part in float32: one out of patience keeps training."""
    def run(*best_epochs: int | None) -> object:
        twins = [SimpleNamespace(history=SimpleNamespace(best_epoch=b)) for b in best_epochs]
        return SimpleNamespace(config=SimpleNamespace(epochs=EPOCHS, patience=2), twins=twins)

    assert not loop.run_is_over(run(5, 7), 8), "torch improved at 7: it has patience left"
    assert loop.run_is_over(run(5, 6), 8) and loop.run_is_over(run(5), 7)
    assert not loop.run_is_over(run(None, None), 0), "before the first epoch"
    assert loop.run_is_over(run(19), EPOCHS), "the last epoch ends the run anyway"


@dataclasses.dataclass
class Stopped:
    """A finished run of both twins that stopped early: its folder, --json results, console."""

    run_dir: Path
    results: list[dict]
    err: str

    @property
    def best(self) -> int:
        return self.results[0]["best_epoch"]


def train_args(noisy_dir: Path, logdir: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(noisy_dir), "--arch", ARCH, "--lr", "0.1", *RUN,
            "--patience", str(PATIENCE), "--logdir", str(logdir), "--run-name", "run", *extra]


@pytest.fixture(scope="module")
def stopped(noisy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    logdir = tmp_path_factory.mktemp("stopped")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main(train_args(noisy_dir, logdir, "--json")) == 0
    return Stopped(logdir / "run", [json.loads(line) for line in out.getvalue().splitlines()],
                   err.getvalue())


def test_the_best_checkpoint_holds_the_best_epochs_weights(
        noisy_dir: Path, tmp_path: Path, stopped: Stopped, capsys: pytest.CaptureFixture) -> None:
    """checkpoint-best of each twin is, bit for bit, the checkpoint of a run of best-epoch
    epochs; its epoch and loss are in --json, the console and the summary."""
    results, err, best = stopped.results, stopped.err, stopped.best
    assert [r["best_epoch"] for r in results] == [best, best] and 1 < best < EPOCHS - PATIENCE
    assert all(r["stopped_early"] and len(r["epoch_seconds"]) == best + PATIENCE for r in results)
    assert f"stopped early after epoch {best + PATIENCE}/{EPOCHS}" in err, err
    assert train(noisy_dir, tmp_path, *RUN, "--epochs", str(best), capsys=capsys)[0] == 0
    for result in results:
        twin, suffix = result["backend"], SUFFIXES[result["backend"]]
        kept = checkpoint.read(stopped.run_dir / twin / f"checkpoint-best{suffix}")
        short = checkpoint.read(tmp_path / "run" / twin / f"checkpoint{suffix}")
        different = [name for name in short.state
                     if not np.array_equal(kept.state[name], short.state[name])]
        assert not different, f"{twin}: checkpoint-best's {different} are not epoch {best}'s"
        assert kept.meta["epoch"] == best
        assert kept.meta["early_stopping"] == {"best_epoch": best, "epochs_without_improvement": 0,
                                               "best_val_loss": result["best_val_loss"]}
        assert f"{twin:>7} best epoch {best}: val loss {result['best_val_loss']:.4f}" in err
        summary = events(Path(result["run_dir"]))
        assert [(e.step, e.value) for e in summary.Scalars("hparam/best_epoch")] == [
            (best + PATIENCE, best)]
        assert summary.Scalars("Accuracy/test")[0].step == best + PATIENCE, "at the last epoch"


def test_evaluate_reads_the_best_or_the_last_checkpoint(stopped: Stopped,
                                                        capsys: pytest.CaptureFixture) -> None:
    results = stopped.results
    folder = Path(results[0]["run_dir"])
    found = {}
    for name, backend in [("checkpoint-best.npz", "torch"), ("checkpoint.npz", "scratch")]:
        assert cli.main(["evaluate", "--checkpoint", str(folder / name), "--backend", backend,
                         "--json"]) == 0
        found[name] = json_line(capsys.readouterr().out)
    assert found["checkpoint-best.npz"]["epoch"] == results[0]["best_epoch"]
    assert found["checkpoint.npz"]["epoch"] == len(results[0]["epoch_seconds"])
    assert found["checkpoint.npz"]["test_accuracy"] == results[0]["test_accuracy"]


def json_line(out: str) -> dict:
    (line,) = out.splitlines()
    return json.loads(line)


def test_evaluating_the_best_of_a_run_without_patience_is_one_line(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train(data_dir, tmp_path, "--epochs", "1", "--backend", "torch", "--no-insight",
                 capsys=capsys)[0] == 0
    path = tmp_path / "run" / "torch" / "checkpoint-best.pt"
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "without --patience" in err[0] and "checkpoint" in err[0], err


def assert_same_best(resumed: Path, straight: Path, twins: tuple[str, ...] = tuple(SUFFIXES)
                     ) -> None:
    for twin in twins:
        mine, theirs = (checkpoint.read(run / twin / f"checkpoint-best{SUFFIXES[twin]}").state
                        for run in (resumed, straight))
        different = [name for name in theirs if not np.array_equal(mine[name], theirs[name])]
        assert not different, f"{twin}: checkpoint-best's {different} differ (np.array_equal)"


def test_a_run_resumed_while_counting_stops_where_the_straight_run_stops(
        noisy_dir: Path, tmp_path: Path, stopped: Stopped) -> None:
    """Ended one epoch after its best (one epoch of patience spent), then resumed for more."""
    assert cli.main(train_args(noisy_dir, tmp_path, "--epochs", str(stopped.best + 1))) == 0
    saved = checkpoint.read(tmp_path / "run" / "torch" / "checkpoint.pt")
    assert saved.meta["early_stopping"]["epochs_without_improvement"] == 1
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--epochs", str(EPOCHS)]) == 0
    assert_same_run(tmp_path / "run", stopped.run_dir)
    assert_same_best(tmp_path / "run", stopped.run_dir)


def test_ctrl_c_mid_epoch_after_the_best_then_resume_is_exact(
        noisy_dir: Path, tmp_path: Path, stopped: Stopped, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The scratch twin alone (it trains the numbers it trains beside torch), stopped in the
    middle of the second epoch after its best."""
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", StopAfterSteps)
        count_steps(patch, (stopped.best + 1) * STEPS_PER_EPOCH + 3)
        status, _, err = train(noisy_dir, tmp_path, *RUN, "--patience", str(PATIENCE),
                               "--backend", "scratch", capsys=capsys)
    assert status == 130 and f"in epoch {stopped.best + 2}" in err, err
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--json"]) == 0
    (result,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (result["best_epoch"], result["stopped_early"]) == (stopped.best, True)
    assert_same_run(tmp_path / "run", stopped.run_dir, ("scratch",))
    assert_same_best(tmp_path / "run", stopped.run_dir, ("scratch",))


@pytest.mark.parametrize("at_best", [True, False], ids=["at-the-best", "at-the-stop"])
def test_killed_at_the_best_or_at_the_stop_the_resumed_run_is_the_straight_one(
        noisy_dir: Path, tmp_path: Path, stopped: Stopped, at_best: bool) -> None:
    """SIGKILLed (the scratch twin alone, without --json) just before the checkpoint of the
    best epoch, whose checkpoint-best is written (the untrained one's is the first save), or
    just before the summary of the run that stopped; ``--resume`` ends as the straight run."""
    args = train_args(noisy_dir, tmp_path, "--backend", "scratch")
    if at_best:
        killed(CHECKPOINTS, "CheckpointWriter.save", 1 + stopped.best, args)
    else:
        killed(EVENTS, "write_summary", 1, args)
    run = tmp_path / "run"
    if at_best:
        assert checkpoint.read(run / "scratch" / "checkpoint-best.npz").meta["epoch"] == \
            stopped.best == checkpoint.read(run / "scratch" / "checkpoint.npz").meta["epoch"] + 1
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert_whole(run, stopped.run_dir, ("scratch",))
    assert_same_best(run, stopped.run_dir, ("scratch",))


@pytest.mark.parametrize("more", [[], ["--epochs", str(EPOCHS + 10)]])
def test_a_run_out_of_patience_is_not_resumed(stopped: Stopped, tmp_path: Path,
                                              more: list[str], capsys: pytest.CaptureFixture
                                              ) -> None:
    run = Path(shutil.copytree(stopped.run_dir, tmp_path / "run"))
    before = (run / "scratch" / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), *more]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"ran out of patience after epoch {stopped.best + PATIENCE}" in \
        err[0], err
    assert (run / "scratch" / "checkpoint.npz").read_bytes() == before


def test_a_run_killed_while_finishing_after_its_stop_finishes_when_resumed(
        stopped: Stopped, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Its torch summary missing (killed before it was written): resuming trains nothing and
    writes it."""
    run = Path(shutil.copytree(stopped.run_dir, tmp_path / "run"))
    for summary in (run / "torch").glob("*.summary"):
        summary.unlink()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    assert not re.search(r"(scratch|torch) epoch \d", captured.err), "an epoch trained again"
    results = [json_line(line) for line in captured.out.splitlines()]
    assert [(r["best_epoch"], r["stopped_early"]) for r in results] == [(stopped.best, True)] * 2
    assert list((run / "torch").glob("*.summary"))


@pytest.mark.parametrize(("edit", "why"), [
    (set_meta("early_stopping.best_epoch", 99), "best epoch after the epochs done"),
    (set_meta("early_stopping.epochs_without_improvement", 0), "not the epochs since the best"),
    (set_meta("early_stopping.best_val_loss", "low"), "a loss that is not a number"),
    (lambda arrays: arrays["meta"].pop("early_stopping"), "no counts in a run with patience"),
])
def test_early_stopping_counts_not_what_this_program_writes_are_refused(
        stopped: Stopped, tmp_path: Path, edit: object, why: str,
        capsys: pytest.CaptureFixture) -> None:
    run = Path(shutil.copytree(stopped.run_dir, tmp_path / "run"))
    edit_npz(run / "scratch" / "checkpoint.npz", edit)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", str(EPOCHS + 1)]) == 2, why
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the early-stopping counts" in err[0], (why, err)


@pytest.mark.parametrize(("flags", "culprit"), [
    (["--patience", "0"], "--patience: must be a positive integer, got 0"),
    (["--patience", "-2"], "--patience: must be a positive integer"),
    (["--patience", "two"], "--patience: must be a positive integer"),
    (["--patience", "2", "--val-size", "0"], "--patience 2: early stopping watches the "
                                             "validation loss"),
])
def test_bad_patience_is_one_line_before_any_work(data_dir: Path, tmp_path: Path,
                                                  flags: list[str], culprit: str,
                                                  capsys: pytest.CaptureFixture) -> None:
    status, results, err = train(data_dir, tmp_path, *flags, capsys=capsys)
    assert status == 2 and results == [], err
    assert len(err.strip().splitlines()) == 1 and culprit in err, err
    assert not (tmp_path / "run").exists(), "no run folder for a refused run"


def test_patience_is_kept_by_a_resumed_run_not_changed(stopped: Stopped,
                                                      capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(stopped.run_dir), "--patience", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--patience cannot be changed" in err[0], err


@pytest.mark.parametrize(("patience", "val_size", "culprit"), [
    (0, VAL_SIZE, "patience 0: must be a whole number >= 1"),
    (True, VAL_SIZE, "patience True"),
    (2.0, VAL_SIZE, "patience 2.0"),
    (2, 0, "patience 2: early stopping watches the validation loss"),
])
def test_fit_refuses_a_bad_patience(noisy_dir: Path, patience: object, val_size: int,
                                    culprit: str) -> None:
    data = load_splits(noisy_dir, val_size=val_size, dtype=np.float64)
    with pytest.raises(SettingsError, match="^" + culprit.replace(".", r"\.")):
        fit(data, dataclasses.replace(CONFIG, patience=patience), backend="scratch")
