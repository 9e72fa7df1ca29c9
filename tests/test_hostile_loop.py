"""Hostile arguments to fit(), OptimizerSpec.create() and a fit run's checkpoints: each is a
named one-line UserError, never a bare TypeError, IndexError or a silent, wrong result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from compare import cli
from compare.data import load_splits
from compare.errors import UserError
from compare.harness.arch import Architecture
from compare.training.config import TrainConfig
from compare.training.fit import fit
from compare.training.optimizers import OptimizerSpec
from tests.helpers import ARCH

CONFIG = TrainConfig(Architecture.parse(ARCH, "relu"), OptimizerSpec.create("sgd", 0.1),
                     epochs=1, batch_size=32, dtype="float64")


@pytest.fixture(scope="module")
def splits(data_dir: Path) -> object:
    return load_splits(data_dir, val_size=30, dtype=np.float64)


def changed(splits: object, **arrays: object) -> object:
    return dataclasses.replace(splits, **arrays)


@pytest.mark.parametrize(("change", "named"), [
    (lambda s: changed(s, train_y=s.train_y[:10]), "train_y"),
    (lambda s: changed(s, train_y=s.train_y * 0 + 11), "train_y"),
    (lambda s: changed(s, train_y=s.train_y.astype(float)), "train_y"),
    (lambda s: changed(s, train_x=s.train_x[:, 0]), "train_x"),
    (lambda s: changed(s, train_x=s.train_x.tolist()), "train_x"),
    (lambda s: changed(s, test_x=s.test_x[:0], test_y=s.test_y[:0]), "test"),
    (lambda s: changed(s, val_x=s.val_x[:, :5]), "val_x"),
    (lambda s: changed(s, test_x=s.test_x.astype(np.float32)), "test_x"),
])
def test_bad_splits_are_a_named_one_line_error(splits: object, tmp_path: Path, change: object,
                                               named: str) -> None:
    with pytest.raises(UserError) as raised:
        fit(change(splits), CONFIG, backend="scratch", log_dir=tmp_path / "run")
    assert named in str(raised.value) and "\n" not in str(raised.value), raised.value
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("arguments", "named"), [
    ({"backend": ["scratch", "scratch"]}, "backend"),
    ({"log_dir": 5}, "log_dir 5"),
    ({"insight": "no"}, "insight"),
    ({"lockstep": "yes"}, "lockstep"),
])
def test_bad_keyword_arguments_are_named(splits: object, arguments: dict, named: str) -> None:
    with pytest.raises(UserError) as raised:
        fit(splits, CONFIG, **arguments)
    assert named in str(raised.value) and "\n" not in str(raised.value), raised.value


def test_a_log_folder_that_cannot_be_made_is_named(splits: object, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"log_dir .*file/run"):
        fit(splits, CONFIG, backend="scratch", log_dir=tmp_path / "file" / "run")


@pytest.mark.parametrize(("arguments", "named"), [
    (("rmsprop", 0.1), "optimizer 'rmsprop'"),
    (("sgd", float("nan")), "lr nan"),
    (("sgd", "0.1"), "lr '0.1'"),
])
def test_optimizer_spec_create_refuses_in_one_named_line(arguments: tuple, named: str) -> None:
    with pytest.raises(UserError) as raised:
        OptimizerSpec.create(*arguments)
    assert named in str(raised.value), raised.value


@pytest.mark.parametrize("given", [{"momentum": 0.5}, {"nesterov": True}])
def test_momentum_given_to_another_optimizer_is_refused_not_dropped(given: dict) -> None:
    with pytest.raises(UserError, match="settings of the 'momentum' optimizer"):
        OptimizerSpec.create("sgd", 0.1, **given)
    assert OptimizerSpec.create("momentum", 0.1, **given).settings[next(iter(given))] == \
        next(iter(given.values()))


def test_evaluate_names_a_script_checkpoint_it_cannot_load_data_for(
        splits: object, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fit(splits, CONFIG, backend="scratch", log_dir=tmp_path)
    path = tmp_path / "scratch" / "checkpoint.npz"
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "compare.fit" in err[0], err
