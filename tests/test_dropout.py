"""Dropout: scratch's inverted dropout against torch's nn.Dropout. One mask for both twins where
they are compared (check_layer, parity, twins trained in one loop), each twin's own seeded draws
when trained alone, and the random state in checkpoints so that a resumed run is exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import compare
import scratch
from compare import cli
from compare.harness import tolerance
from compare.harness.arch import Architecture
from compare.harness.masks import MaskError, shared_masks
from compare.harness.parity import run_parity
from compare.training import checkpoint, loop
from compare.training.backend import Backend
from compare.training.build import build_backend
from compare.training.config import TrainConfig
from compare.training.optimizers import OptimizerSpec
from tests.helpers import assert_rows_ok, events, train
from tests.test_resume import StopAfterSteps, assert_same_run, count_steps

P = 0.3
TWINS = {"scratch": ".npz", "torch": ".pt"}


def batch(shape: tuple[int, ...], dtype: type = np.float64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- the layer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_p_zero_and_one_are_torchs_to_the_last_bit(p: float, dtype: type) -> None:
    """No mask is drawn: scratch is compared with torch's own output, no mask handed over."""
    x, upstream = batch((5, 7), dtype), batch((5, 7), dtype, seed=1)
    layer = scratch.Dropout(p)
    y, dx = layer.forward(x), layer.backward(upstream)
    x_torch = torch.from_numpy(x.copy()).requires_grad_()
    y_torch = nn.Dropout(p)(x_torch)
    y_torch.backward(torch.from_numpy(upstream))
    assert y.dtype == dtype and np.array_equal(y, y_torch.detach().numpy()), f"p={p}: y differs"
    assert np.array_equal(dx, x_torch.grad.numpy()), f"p={p}: dx differs"
    assert np.array_equal(y, x if p == 0 else np.zeros_like(x))
    report = compare.check_layer(scratch.Dropout(p), nn.Dropout(p), x)
    assert_rows_ok(report.rows, dtype, f"check_layer Dropout({p})")


def test_eval_mode_is_the_identity() -> None:
    x, upstream = batch((4, 6)), batch((4, 6), seed=1)
    layer = scratch.Dropout(P).eval()
    assert np.array_equal(layer.forward(x), x) and np.array_equal(layer.backward(upstream),
                                                                  upstream)
    assert np.array_equal(nn.Dropout(P).eval()(torch.from_numpy(x)).numpy(), x)
    report = compare.check_layer(layer, nn.Dropout(P).eval(), x)
    assert_rows_ok(report.rows, np.float64, "check_layer Dropout in eval mode")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_layer_has_both_twins_apply_one_mask(dtype: type) -> None:
    """The torch twin applies the mask scratch drew (the rows would fail on ~half the entries
    with a mask of its own), and finite differences see one function."""
    layer = scratch.Dropout(P, rng=np.random.default_rng(1))
    x = batch((40, 30), dtype)
    report = compare.check_layer(layer, nn.Dropout(P), x)
    assert_rows_ok(report.rows, dtype, f"check_layer Dropout({P}), {np.dtype(dtype).name}")
    assert 0.6 < layer.mask.mean() < 0.8, "the scratch layer kept no mask of its own draw"


def test_an_inplace_torch_dropout_is_refused_in_one_line() -> None:
    with pytest.raises(compare.LayerCheckError, match=r"^Dropout: torch's Dropout\(inplace=True\) "
                                                      "overwrites its input"):
        compare.check_layer(scratch.Dropout(P), nn.Dropout(P, inplace=True), batch((4, 6)))


def test_check_layer_of_twins_with_dropout_in_every_hidden_layer() -> None:
    twins = compare.build_twins(Architecture((12, 9, 8, 10), "tanh", dropout=P), seed=3,
                                dtype="float64")
    report = compare.check_layer(twins.scratch, twins.torch, batch((16, 12)))
    assert_rows_ok(report.rows, np.float64, "check_layer of twins with dropout")
    assert [row.layer for row in report.rows if row.tensor == "Y"].count("2 Dropout") == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm", ["none", "layer"])
def test_parity_with_dropout(norm: str, dtype: str) -> None:
    """float64 to 1e-12, float32 to assert_close's defaults, finite differences included."""
    arch = Architecture((20, 16, 12, 10), "relu", norm=norm, dropout=P)
    report = run_parity(arch, dtype=dtype, batch_size=16, seed=2)
    assert_rows_ok(report.rows, dtype, f"parity {arch.activation_label}")


def test_compare_parity_with_dropout_passes(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["parity", "--arch", "20-16-10", "--dropout", str(P)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("PASS")


def test_gradcheck_agrees_with_the_scratch_backward() -> None:
    """torch.autograd.gradcheck (central differences in float64) on scratch's forward and
    backward for one mask; a backward that forgets the mask fails it."""
    layer = scratch.Dropout(P, rng=np.random.default_rng(4))
    mask = layer.draw_mask((6, 5))

    def function(backward: object) -> object:
        class ScratchDropout(torch.autograd.Function):
            @staticmethod
            def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(layer.apply_mask(x.detach().numpy(), mask))

            @staticmethod
            def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(backward(grad.numpy()))

        return ScratchDropout.apply

    x = torch.from_numpy(batch((6, 5))).requires_grad_()
    assert torch.autograd.gradcheck(function(layer.backward), (x,))
    assert not torch.autograd.gradcheck(function(np.copy), (x,), raise_exception=False)


def test_a_torch_twin_that_steps_first_is_refused() -> None:
    scratch_model, torch_model = compare.build_twins(Architecture((6, 5, 3), "relu", dropout=P),
                                                     dtype="float64")
    with shared_masks(scratch_model, torch_model), pytest.raises(
            MaskError, match=r"layer 2 \(Dropout\): torch's Dropout ran in training mode before"):
        torch_model(torch.from_numpy(batch((4, 6))))
    torch_model(torch.from_numpy(batch((4, 6))))  # left: its own masks again


# ---------------------------------------------------------------- each twin's own draws


def dropout_backend(name: str, seed: int) -> Backend:
    """Twin ``name`` of a 30-64-64-10 tanh network with p = 0.3, built from ``seed``."""
    arch = Architecture((30, 64, 64, 10), "tanh", dropout=P)
    return build_backend(name, TrainConfig(arch, OptimizerSpec.create("sgd", 0.1), 1, 50, seed,
                                           "float64"))


def masks_in_training(backend: Backend, steps: int = 10) -> list[np.ndarray]:
    """The keep masks of every Dropout of ``backend`` (trained alone) at each of ``steps``
    training steps on batches of 50."""
    name, masks = backend.name, []
    if name == "torch":
        def keep(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
            assert torch.all(inputs[0] != 0), "a tanh output of 0 hides the mask"
            masks.append((output != 0).numpy())
        for layer in backend.model:
            if isinstance(layer, nn.Dropout):
                layer.register_forward_hook(keep)
    x, y = batch((steps * 50, 30), seed=5), np.random.default_rng(6).integers(0, 10, steps * 50)
    backend.start_epoch(steps)
    for batch_x, batch_y in backend.loader(x, y).batches(np.arange(len(y)), 50):
        backend.train_step(batch_x, batch_y)
        masks += [] if name == "torch" else [layer.mask for layer in backend.dropouts.values()]
    return masks


@pytest.mark.parametrize("name", ["scratch", "torch"])
def test_each_twin_alone_keeps_a_unit_with_probability_1_minus_p(name: str) -> None:
    """64,000 draws: the count of kept units within 6 standard deviations of n·(1 - p) (a
    binomial count leaves that band with probability 2e-9; the draws are seeded besides)."""
    masks = masks_in_training(dropout_backend(name, seed=0))
    n, kept = sum(mask.size for mask in masks), sum(int(mask.sum()) for mask in masks)
    bound = 6 * np.sqrt(n * P * (1 - P))
    assert n == 10 * 2 * 50 * 64 and abs(kept - n * (1 - P)) <= bound, (
        f"{name}: kept {kept} of {n}, expected {n * (1 - P):.0f} ± {bound:.0f}")
    assert not np.array_equal(masks[0], masks[2]), f"{name}: the same mask at two steps"


def test_alone_the_torch_twin_draws_from_its_seed_and_leaves_the_process_generator() -> None:
    """Its own masks (not scratch's), the same for the same seed whatever the process's
    generator holds, which its steps neither use nor move."""
    backends = [dropout_backend("torch", seed) for seed in (0, 0, 1)]
    masks = []
    for seed, backend in zip((123, 456, 123), backends, strict=True):
        torch.manual_seed(seed)
        before = torch.get_rng_state()
        masks.append(masks_in_training(backend, steps=2))
        assert torch.equal(before, torch.get_rng_state()), "a step moved the process's generator"
    first, again, other = masks
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)), "seed 0 twice"
    assert not np.array_equal(first[0], other[0]), "seeds 0 and 1 drew the same mask"
    assert not np.array_equal(first[0], masks_in_training(dropout_backend("scratch", 0), 1)[0])


# ---------------------------------------------------------------- training runs

DROPOUT_FLAGS = ["--dropout", "0.2"]
"""The runs that are resumed, or whose checkpoints are read: without a normalization (resuming
one is the norm branch's work)."""


def weights(run: Path, twin: str) -> dict[str, np.ndarray]:
    return checkpoint.read(run / twin / f"checkpoint{TWINS[twin]}").state


@pytest.mark.parametrize("lockstep", [["--lockstep"], []])
def test_twins_trained_together_apply_the_same_masks(data_dir: Path, tmp_path: Path,
                                                     lockstep: list[str],
                                                     capsys: pytest.CaptureFixture) -> None:
    """With or without --lockstep, two twins with batch norm and dropout in one loop train the
    same numbers to float64's rounding (with masks of their own, the losses would part at the
    first step)."""
    status, results, err = train(data_dir, tmp_path, "--dropout", "0.2", "--norm", "batch",
                                 "--dtype", "float64", *lockstep, capsys=capsys)
    assert status == 0, err
    losses = [result["final_train_loss"] for result in results]
    assert abs(losses[0] - losses[1]) <= 1e-12 * abs(losses[1]), losses
    if lockstep:
        diffs = [e.value for e in events(tmp_path / "run" / "parity").Scalars(
            "Parity/max_weight_rel_diff")]
        assert len(diffs) == 18 and max(diffs) <= tolerance.TRAINING_LOCKSTEP_FLOAT64_MAX_REL


@pytest.mark.parametrize("backend", ["both", "torch"])
def test_the_same_seed_gives_the_same_run(data_dir: Path, tmp_path: Path, backend: str,
                                          capsys: pytest.CaptureFixture) -> None:
    for name in ("first", "second"):
        assert train(data_dir, tmp_path / name, *DROPOUT_FLAGS, "--backend", backend,
                     capsys=capsys)[0] == 0
    for twin in ["scratch", "torch"] if backend == "both" else [backend]:
        a, b = weights(tmp_path / "first" / "run", twin), weights(tmp_path / "second" / "run",
                                                                    twin)
        assert all(np.array_equal(a[name], b[name]) for name in b), f"{twin}: runs differ"


def random_states(run: Path, twin: str) -> dict:
    return checkpoint.read(run / twin / f"checkpoint{TWINS[twin]}").random_state


@pytest.mark.parametrize(("backend", "stop_after", "mode"), [
    ("both", 7, ["--lockstep", "--dtype", "float64"]),  # mid-epoch: 4 steps of each twin
    ("both", 18, []),  # at the end of epoch 1 (9 steps an epoch)
    ("scratch", 12, []),  # mid-epoch 2
    ("torch", 5, []),
    ("torch", 9, [])])
def test_ctrl_c_then_resume_is_exact(data_dir: Path, tmp_path: Path, backend: str,
                                     stop_after: int, mode: list[str],
                                     capsys: pytest.CaptureFixture,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights, running statistics, scalars and the random states, bit for bit."""
    flags = [*DROPOUT_FLAGS, "--backend", backend, "--epochs", "3", *mode]
    assert train(data_dir, tmp_path / "straight", *flags, capsys=capsys)[0] == 0
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", StopAfterSteps)
        count_steps(patch, stop_after)
        assert train(data_dir, tmp_path / "resumed", *flags, capsys=capsys)[0] == 130
    resumed, straight = tmp_path / "resumed" / "run", tmp_path / "straight" / "run"
    assert cli.main(["train", "--resume", str(resumed)]) == 0
    twins = ("scratch", "torch") if backend == "both" else (backend,)
    assert_same_run(resumed, straight, twins)
    for twin in twins:
        a, b = random_states(resumed, twin), random_states(straight, twin)
        assert a.keys() == b.keys() and a and all(np.array_equal(a[k], b[k]) if twin == "torch"
                                                  else a[k] == b[k] for k in a), twin


@pytest.fixture(scope="module")
def finished_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of both twins with dropout, stopped there."""
    folder = tmp_path_factory.mktemp("finished")
    assert cli.main(["train", "--data-dir", str(data_dir), "--arch", "64-16-10", "--epochs",
                     "1", "--batch-size", "32", "--val-size", "30", "--logdir", str(folder),
                     "--run-name", "run", *DROPOUT_FLAGS]) == 0
    return folder / "run"


def rewrite_random_state(path: Path, change: str) -> None:
    """The checkpoint at ``path`` without its random state (``missing``) or with a broken one."""
    if path.suffix == ".pt":
        saved = torch.load(path, weights_only=True)
        del saved["random_state"]
        if change == "broken":
            saved["random_state"] = {"cpu": torch.full((5056,), 255, dtype=torch.uint8)}
        torch.save(saved, path)
        return
    saved = checkpoint.read(path)
    broken = {"random_state": {"2": {"bit_generator": "MT19937"}}} if change == "broken" else {}
    checkpoint.save_npz(path, saved.state, saved.meta | broken, saved.optimizer, saved.progress)


@pytest.mark.parametrize("change", ["missing", "broken"])
@pytest.mark.parametrize("twin", list(TWINS))
def test_a_checkpoint_without_a_good_random_state_is_refused(
        finished_run: Path, tmp_path: Path, twin: str, change: str,
        capsys: pytest.CaptureFixture) -> None:
    """A network with Dropout cannot continue exactly without its random state (one written
    before it was saved): one line naming the file, exit 2, before any step."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    path = run / twin / f"checkpoint{TWINS[twin]}"
    rewrite_random_state(path, change)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "random state" in err[0], err
