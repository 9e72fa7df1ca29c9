"""fit(): the training loop for scripts. It writes nothing without a log folder, trains the same
numbers ``compare train`` trains, and refuses a bad argument with a named one-line error."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from compare import cli
from compare.data import load_splits
from compare.errors import UserError
from compare.harness.arch import Architecture
from compare.training.config import SettingsError, TrainConfig
from compare.training.fit import fit
from compare.training.optimizers import OptimizerSpec
from tests.helpers import ARCH

CONFIG = TrainConfig(Architecture.parse(ARCH, "relu"), OptimizerSpec.create("sgd", 0.1),
                     epochs=2, batch_size=32, dtype="float64")


@pytest.fixture(scope="module")
def splits(data_dir: Path) -> object:
    return load_splits(data_dir, val_size=30, dtype=np.float64)


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_without_a_log_folder_nothing_is_written(splits: object, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    history = fit(splits, CONFIG)
    assert files_under(tmp_path) == [], "fit wrote files without a log folder"
    assert set(history) == {"scratch", "torch"}
    for twin in history.values():
        assert [record.epoch for record in twin.epochs] == [1, 2]
        assert len(twin.epochs[0].step_losses) == 9  # 270 images in batches of 32
        assert 0 <= twin.epochs[-1].validation.accuracy <= 1 and twin.test is not None
        assert twin.run_dir is None
    scratch, torch = history["scratch"], history["torch"]
    assert scratch.train_loss == pytest.approx(torch.train_loss, rel=1e-9)


def test_fit_trains_what_compare_train_trains(splits: object, data_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    """The same settings give the same figures, to the last digit: one loop."""
    history = fit(splits, CONFIG, backend="scratch")
    assert cli.main(["train", "--backend", "scratch", "--data-dir", str(data_dir), "--arch", ARCH,
                     "--epochs", "2", "--batch-size", "32", "--val-size", "30", "--dtype",
                     "float64", "--logdir", str(tmp_path), "--json"]) == 0
    (result,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert result["final_train_loss"] == history["scratch"].train_loss
    assert result["test_accuracy"] == history["scratch"].test.accuracy


def test_a_log_folder_gets_each_twins_events_and_checkpoint(splits: object, tmp_path: Path
                                                            ) -> None:
    history = fit(splits, dataclasses.replace(CONFIG, epochs=1), log_dir=tmp_path / "run",
                  lockstep=True)
    names = {path.relative_to(tmp_path / "run").parts[0] for path in files_under(tmp_path)}
    assert names == {"scratch", "torch", "parity"}
    assert Path(history["torch"].run_dir) == tmp_path / "run" / "torch"
    assert list((tmp_path / "run" / "scratch").glob("checkpoint.npz"))
    with pytest.raises(SettingsError, match="holds a run already"):
        fit(splits, CONFIG, log_dir=tmp_path / "run")


def test_a_script_run_is_not_resumed_by_the_command_line(splits: object, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    fit(splits, dataclasses.replace(CONFIG, epochs=1), backend="scratch", log_dir=tmp_path)
    assert cli.main(["train", "--resume", str(tmp_path), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "from a script" in err[0], err


@pytest.mark.parametrize(("change", "named"), [
    ({"backend": "jax"}, "backend 'jax'"),
    ({"config": dataclasses.replace(CONFIG, epochs=0)}, "epochs 0"),
    ({"config": dataclasses.replace(CONFIG, batch_size=2.5)}, "batch_size 2.5"),
    ({"config": dataclasses.replace(CONFIG, dtype="float16")}, "dtype 'float16'"),
    ({"config": dataclasses.replace(CONFIG, dtype="float32")}, "float32 ones"),
    ({"config": dataclasses.replace(CONFIG, device="tpu")}, "device 'tpu'"),
    ({"config": dataclasses.replace(CONFIG, schedule="linear")}, "schedule 'linear'"),
    ({"config": dataclasses.replace(CONFIG, arch=Architecture.parse("10-10", "relu"))},
     "arch 10-10"),
    ({"config": dataclasses.replace(CONFIG, arch="64-16-10")}, "arch '64-16-10'"),
    ({"config": dataclasses.replace(CONFIG, optimizer=OptimizerSpec("sgd", -1.0))},
     "optimizer lr -1.0"),
    ({"config": dataclasses.replace(CONFIG, optimizer=OptimizerSpec("sgd", 0.1, {}))},
     "optimizer settings"),
    ({"config": dataclasses.replace(CONFIG, optimizer=OptimizerSpec.create(
        "sgd", 0.1, weight_decay=1e3))}, "optimizer weight_decay 1000"),
    ({"backend": "scratch", "lockstep": True}, "lockstep"),
    ({"config": None}, "config a TrainConfig"),
])
def test_a_bad_argument_is_a_named_one_line_error(splits: object, tmp_path: Path, change: dict,
                                                  named: str) -> None:
    arguments = {"config": CONFIG, "log_dir": tmp_path / "run"} | change
    config = arguments.pop("config")
    with pytest.raises(UserError) as raised:
        fit(splits, config, **arguments)
    assert named in str(raised.value) and "\n" not in str(raised.value), raised.value
    assert not (tmp_path / "run").exists(), "a refused fit made its log folder"


def test_a_log_folder_that_is_a_file_is_refused(splits: object, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="is a file"):
        fit(splits, CONFIG, log_dir=tmp_path / "file")
    assert os.listdir(tmp_path) == ["file"]
