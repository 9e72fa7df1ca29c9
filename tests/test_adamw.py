"""AdamW, Adam with decoupled weight decay: scratch.AdamW against torch.optim.AdamW in lockstep,
the decay kept out of the moments, its state saved and restored, runs resumed bit for bit, and
its settings checked like every optimizer's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import scratch
from compare import cli
from compare.data import load_splits
from compare.errors import UserError
from compare.harness.arch import Architecture
from compare.training import checkpoint
from compare.training.config import TrainConfig
from compare.training.fit import fit
from compare.training.lockstep import optimizer_lockstep
from compare.training.optimizers import OptimizerSpec
from tests.helpers import ARCH, assert_lockstep_close, events, train
from tests.test_faults_checkpoint import edit_npz, edit_pt
from tests.test_faults_cli import one_error_line
from tests.test_resume import assert_same_run

LOCKSTEP_STEPS = 50
LOCKSTEP_MAX_REL = 1e-12
"""float64 ``train --lockstep`` with AdamW on the 8x8 images: measured 3.7e-16 (default decay)
and 6.5e-16 (lr 0.01, decay 0.5) relative over 50 steps."""


def two_copies() -> tuple[list[scratch.Parameter], list[scratch.Parameter]]:
    """Two copies of one float64 network's parameters (shapes (5, 6), (5,), (3, 5), (3,))."""
    model = Architecture.parse("6-5-3", "tanh").build_scratch(seed=0, dtype="float64")
    copy = [scratch.Parameter.of(p.value.copy()) for p in model.parameters()]
    return list(model.parameters()), copy


def random_grads(params: list[scratch.Parameter], rng: np.random.Generator) -> None:
    for p in params:
        p.grad = rng.standard_normal(p.value.shape)


@pytest.mark.parametrize("decay", [[], ["--lr", "0.01", "--weight-decay", "0.5"]],
                         ids=["default-decay", "decay-0.5"])
def test_lockstep_float64_50_steps(decay: list[str], data_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    """``compare train --backend both --lockstep --optimizer adamw --dtype float64``: 6 epochs of 9
    steps; the weights' relative difference after each of the first 50 steps."""
    status, _, err = train(data_dir, tmp_path, "--optimizer", "adamw", "--lr", "0.003", *decay,
                           "--dtype", "float64", "--lockstep", "--epochs", "6", capsys=capsys)
    assert status == 0, err
    diffs = [e.value for e in events(tmp_path / "run" / "parity").Scalars(
        "Parity/max_weight_rel_diff")]
    assert len(diffs) == 54
    assert_lockstep_close(diffs[:LOCKSTEP_STEPS], LOCKSTEP_MAX_REL, f"adamw {decay}")


def test_adamw_is_the_decay_then_adam_without_it() -> None:
    """One AdamW step is ``p *= 1 - lr·wd`` and then Adam's step with no decay at all, to the
    bit: a decay folded into the gradient (L2, as Adam does) would change the moments and the
    step."""
    adamw_params, adam_params = two_copies()
    adamw = scratch.AdamW(adamw_params, lr=0.01, weight_decay=0.3)
    adam = scratch.Adam(adam_params, lr=0.01, weight_decay=0.0)
    rng = np.random.default_rng(0)
    for step in range(1, 6):
        random_grads(adamw_params, rng)
        for p, q in zip(adam_params, adamw_params, strict=True):
            p.grad = q.grad
            p.value *= 1 - 0.01 * 0.3
        adamw.step()
        adam.step()
        for p, q in zip(adam_params, adamw_params, strict=True):
            assert np.array_equal(p.value, q.value), f"step {step}: AdamW is not decay + Adam"


def test_with_no_gradient_only_the_decay_moves_the_weights() -> None:
    """Zero gradients leave the moments at 0 and the Adam step at 0: the weights shrink by
    exactly ``1 - lr·wd``. Coupled (L2) decay would feed wd·p into the moments and step by about
    lr·sign(p) instead."""
    params, before = two_copies()
    optimizer = scratch.AdamW(params, lr=0.01, weight_decay=0.5)
    for p in params:
        p.grad = np.zeros_like(p.value)
    optimizer.step()
    for p, q in zip(params, before, strict=True):
        assert np.array_equal(p.value, q.value * (1 - 0.01 * 0.5))
    assert all(not arrays["exp_avg"].any() and not arrays["exp_avg_sq"].any()
               for arrays in optimizer.state_dict()["state"].values())


def test_lockstep_catches_a_coupled_decay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a scratch AdamW that folds the decay into the gradient parts from
    torch.optim.AdamW at the first step."""
    monkeypatch.setattr(scratch.AdamW, "adam_grad", scratch.Adam.adam_grad)
    diffs = optimizer_lockstep(Architecture.parse("20-10-4", "tanh"),
                               OptimizerSpec.create("adamw", 0.01, weight_decay=0.5), steps=3)
    with pytest.raises(AssertionError, match="after step 1 the weights differ"):
        assert_lockstep_close(diffs, LOCKSTEP_MAX_REL, "coupled decay")


def test_state_dict_round_trip() -> None:
    """An AdamW restored from another's ``state_dict()`` after 3 steps takes the next 3 steps to
    the same bits; the saved state is Adam's (exp_avg, exp_avg_sq, step), copied."""
    params, copy = two_copies()
    first = scratch.AdamW(params, lr=0.01, weight_decay=0.1)
    rng = np.random.default_rng(1)
    for _ in range(3):
        random_grads(params, rng)
        first.step()
    saved = first.state_dict()
    assert saved["step"] == 3 and set(saved["state"]) == {0, 1, 2, 3}
    assert all(set(arrays) == {"exp_avg", "exp_avg_sq"} for arrays in saved["state"].values())
    assert saved["state"][0]["exp_avg"] is not first.m[0]
    for p, q in zip(copy, params, strict=True):
        p.value[...] = q.value
    second = scratch.AdamW(copy, lr=0.01, weight_decay=0.1)
    second.load_state_dict(saved)
    for _ in range(3):
        random_grads(params, rng)
        for p, q in zip(copy, params, strict=True):
            p.grad = q.grad
        first.step()
        second.step()
    assert all(np.array_equal(p.value, q.value) for p, q in zip(copy, params, strict=True))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_epochs_and_two_more_is_four_epochs(dtype: str, data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    """Both twins: the resumed run's weights equal the straight run's (np.array_equal)."""
    flags = ["--optimizer", "adamw", "--lr", "0.003", "--weight-decay", "0.05", "--dtype", dtype]
    assert train(data_dir, tmp_path / "straight", *flags, "--epochs", "4", capsys=capsys)[0] == 0
    assert train(data_dir, tmp_path / "resumed", *flags, "--epochs", "2", capsys=capsys)[0] == 0
    assert cli.main(["train", "--resume", str(tmp_path / "resumed" / "run"), "--epochs", "4"]) == 0
    assert_same_run(tmp_path / "resumed" / "run", tmp_path / "straight" / "run")


@pytest.mark.parametrize(("twin", "edit", "culprit"), [
    ("torch", lambda saved: saved["optimizer"]["state"][0].pop("exp_avg_sq"),
     "parameter 0 has state ['exp_avg', 'step'], adamw makes"),
    ("scratch", lambda arrays: arrays["meta"]["optimizer_scalars"].update(step=5),
     "optimizer step is 5, but the run has taken 9 steps"),
    ("scratch", lambda arrays: arrays["optimizer/1/exp_avg_sq"].fill(-1.0),
     "exp_avg_sq of parameter 1 holds negative values")])
def test_an_optimizer_state_adamw_does_not_make_is_refused(
        twin: str, edit: Callable, culprit: str, data_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    """Checked as Adam's state is: the entries, the step count, a second moment below 0."""
    flags = ["--optimizer", "adamw", "--lr", "0.003", "--epochs", "1", "--no-insight"]
    assert train(data_dir, tmp_path, *flags, capsys=capsys)[0] == 0
    path = tmp_path / "run" / twin / f"checkpoint{checkpoint.SUFFIXES[twin]}"
    (edit_pt if twin == "torch" else edit_npz)(path, edit)
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert err.startswith(f"error: {path}: its optimizer state does not fit the run's adamw "
                          "optimizer") and culprit in err, err


@pytest.mark.parametrize(("flags", "decay"), [
    (["--optimizer", "adamw"], 0.01), (["--optimizer", "adamw", "--weight-decay", "0"], 0.0),
    (["--optimizer", "adamw", "--weight-decay", "0.2"], 0.2), (["--optimizer", "adam"], 0.0)])
def test_the_default_decay_is_torchs_and_a_given_one_wins(
        flags: list[str], decay: float, data_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    status, _, err = train(data_dir, tmp_path, *flags, "--lr", "0.003", "--epochs", "1",
                           "--backend", "scratch", "--no-insight", capsys=capsys)
    assert status == 0, err
    meta = checkpoint.read(tmp_path / "run" / "scratch" / "checkpoint.npz").meta
    assert meta["config"]["optimizer"]["settings"] == {"weight_decay": decay}


@pytest.mark.parametrize(("flags", "names"), [
    (["--momentum", "0.9"], "error: --momentum is a setting of --optimizer momentum"),
    (["--nesterov"], "error: --nesterov is a setting of --optimizer momentum"),
    (["--lr", "0.01", "--weight-decay", "200"], "error: --weight-decay 200: training diverges"),
])
def test_a_bad_setting_is_refused_in_one_line(flags: list[str], names: str, data_dir: Path,
                                              tmp_path: Path, capsys: pytest.CaptureFixture
                                              ) -> None:
    status, results, err = train(data_dir, tmp_path, "--optimizer", "adamw", *flags,
                                 capsys=capsys)
    assert (status, results) == (2, []), err
    assert one_error_line(err).startswith(names), err
    assert not (tmp_path / "run").exists()


def test_fit_trains_both_twins_in_lockstep(data_dir: Path) -> None:
    """``compare.fit`` with AdamW (the default decay, 0.01): the float64 twins stepped together
    (--lockstep stops a run past 1e-9) and their training losses agree to 1e-12 relative."""
    config = TrainConfig(Architecture.parse(ARCH, "relu"), OptimizerSpec.create("adamw", 0.003),
                         epochs=2, batch_size=32, dtype="float64")
    assert config.optimizer.settings == {"weight_decay": 0.01}
    history = fit(load_splits(data_dir, val_size=30, dtype=np.float64), config, lockstep=True)
    assert history["scratch"].train_loss == pytest.approx(history["torch"].train_loss,
                                                          rel=1e-12, abs=0), "float64 losses"


def test_the_api_refuses_momentum_and_a_diverging_decay() -> None:
    with pytest.raises(UserError, match="settings of the 'momentum' optimizer"):
        OptimizerSpec.create("adamw", 0.1, momentum=0.9)
    config = TrainConfig(Architecture.parse(ARCH, "relu"),
                         OptimizerSpec.create("adamw", 0.1, weight_decay=20.0))
    with pytest.raises(UserError, match="optimizer weight_decay 20: training diverges"):
        config.check()
