"""BatchNorm1d and LayerNorm: scratch's against PyTorch's own definitions, alone (check_layer, in
training and evaluation mode; torch.autograd.gradcheck of scratch's backward) and inside the
twins (parity with buffers and evaluation rows, lockstep training, the last batch of one,
resume, checkpoints, insight), and wrong gradients caught where a sum over the batch cancels."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import compare
import scratch
import torch_ref
from compare import cli
from compare.harness import tolerance
from compare.harness.arch import Architecture
from compare.harness.parity import run_parity
from compare.harness.term_scale import summed_terms
from compare.layers import NORMS, LayerKind
from compare.training import checkpoint, loop
from compare.training.config import batch_bounds, steps_per_epoch
from scratch import normalization
from tests.helpers import assert_rows_ok, assert_states_close, events, train
from tests.test_resume import OPTIMIZERS, StopAfterSteps, assert_same_run, count_steps

FEATURES = 7
NORM_ARCH = "64-16-12-10"
"""Two hidden layers, so two normalization layers, on the ``data_dir`` fixture's 8x8 images."""


def batch(rows: int, dtype: type = np.float64, seed: int = 0) -> np.ndarray:
    """Features far from mean 0 and std 1, so that normalizing them changes them."""
    rng = np.random.default_rng(seed)
    return (2.0 + 3.0 * rng.standard_normal((rows, FEATURES))).astype(dtype)


def trained(kind: LayerKind, dtype: type, *, training: bool, **settings: float | None
            ) -> scratch.Module:
    """A layer of ``kind`` with random weight and bias, after three training-mode batches (batch
    norm's running estimates far from 0 and 1), in training mode or in evaluation mode."""
    layer = kind.scratch(FEATURES, dtype=dtype, **settings)
    rng = np.random.default_rng(1)
    layer.weight.value[...] = rng.normal(1.0, 0.5, FEATURES)
    layer.bias.value[...] = rng.normal(0.0, 0.5, FEATURES)
    for seed in (2, 3, 4):
        layer.forward(batch(10, dtype, seed))
    return layer.train(training)


def torch_twin(layer: scratch.Module, kind: LayerKind, dtype: type) -> nn.Module:
    return kind.torch_like(layer, dtype=getattr(torch, np.dtype(dtype).name)).train(
        layer.training)


# ---------------------------------------------------------------- one layer


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm", list(NORMS))
def test_check_layer_alone(norm: str, dtype: type, training: bool) -> None:
    """Y, dX, dgamma, dbeta (and batch norm's buffers after the pass): float64 to 1e-12,
    float32 to torch's assert_close defaults; evaluation mode after training batches."""
    kind = NORMS[norm]
    layer = trained(kind, dtype, training=training)
    report = compare.check_layer(layer, torch_twin(layer, kind, dtype), batch(16, dtype))
    assert_rows_ok(report.rows, dtype, f"check_layer {kind.torch} {np.dtype(dtype)} "
                                       f"{'train' if training else 'eval'}")
    if dtype == np.float64:
        assert report.max_rel_error <= tolerance.FLOAT64_MAX_REL, report.table()
    tensors = {row.tensor for row in report.rows}
    assert {"Y", "dX", "dgamma", "dbeta"} <= tensors
    assert set(layer.buffer_names) <= tensors
    if norm == "batch":
        assert not np.allclose(layer.running_mean, 0) and not np.allclose(layer.running_var, 1)


class ScratchLayer(torch.autograd.Function):
    """A scratch layer as a function of (x, weight, bias) autograd can check: forward and
    backward run scratch's NumPy code, in float64."""

    @staticmethod
    def forward(ctx, x, weight, bias, layer):
        layer.weight.value[...] = weight.detach().numpy()
        layer.bias.value[...] = bias.detach().numpy()
        output = layer.forward(x.detach().numpy())
        ctx.layer = copy.deepcopy(layer)  # gradcheck's later forward passes must not change it
        return torch.from_numpy(output)

    @staticmethod
    def backward(ctx, grad_output):
        layer = ctx.layer
        dx = layer.backward(grad_output.detach().numpy().copy())
        return (torch.from_numpy(dx), torch.from_numpy(layer.weight.grad.copy()),
                torch.from_numpy(layer.bias.grad.copy()), None)


def gradcheck(layer: scratch.Module, *, raise_exception: bool = True) -> bool:
    x = torch.from_numpy(batch(6)).requires_grad_()
    weight = torch.from_numpy(layer.weight.value.copy()).requires_grad_()
    bias = torch.from_numpy(layer.bias.value.copy()).requires_grad_()
    return torch.autograd.gradcheck(lambda *inputs: ScratchLayer.apply(*inputs, layer),
                                    (x, weight, bias), raise_exception=raise_exception)


@pytest.mark.parametrize(("norm", "training"), [("batch", True), ("batch", False),
                                                ("layer", True)],
                         ids=["batch-train", "batch-eval", "layer"])
def test_gradcheck_agrees_with_scratch_backward(norm: str, training: bool) -> None:
    assert gradcheck(trained(NORMS[norm], np.float64, training=training))


def test_gradcheck_catches_a_wrong_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above can fail: batch norm's backward in training mode with the evaluation
    formula (as if mean and var did not depend on x)."""
    monkeypatch.setattr(normalization, "standardize_backward",
                        lambda g, x_hat, inv_std, axis: g * inv_std)
    assert not gradcheck(trained(NORMS["batch"], np.float64, training=True),
                         raise_exception=False)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_estimates_follow_torch_batch_after_batch(momentum: float | None) -> None:
    """Six training batches of different sizes, then evaluation: the buffers after each batch
    (num_batches_tracked exactly) and the evaluation output, float64; momentum None is the
    plain average over the batches."""
    mine = scratch.BatchNorm1d(FEATURES, momentum=momentum, dtype=np.float64)
    theirs = nn.BatchNorm1d(FEATURES, momentum=momentum, dtype=torch.float64)
    for seed, rows in enumerate([2, 3, 8, 5, 16, 4]):
        x = batch(rows, seed=seed)
        mine.forward(x)
        theirs(torch.from_numpy(x))
        for name, array in mine.named_buffers():
            expected = theirs.state_dict()[name].numpy()
            tol = tolerance.FLOAT64 if array.dtype == np.float64 else tolerance.EXACT
            assert tol.passes(array, expected), (name, seed, array, expected, tol.name)
    assert mine.num_batches_tracked == 6 and mine.num_batches_tracked.dtype == np.int64
    x = batch(5, seed=9)
    with torch.no_grad():
        expected = theirs.eval()(torch.from_numpy(x)).numpy()
    assert tolerance.FLOAT64.passes(mine.eval().forward(x), expected)


def test_running_estimates_by_the_formula() -> None:
    """One batch from running mean 0 and var 1: momentum · the batch mean, and 0.9 + 0.1 · the
    unbiased variance; the output is normalized with the biased one."""
    layer = scratch.BatchNorm1d(FEATURES, dtype=np.float64)
    x = batch(5)
    y = layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(y, (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5),
                               rtol=1e-12)


def test_scratch_layers_behave_as_torchs() -> None:
    bn = scratch.BatchNorm1d(3, dtype=np.float64)
    assert repr(bn) == repr(nn.BatchNorm1d(3))
    assert repr(scratch.LayerNorm(3)) == repr(nn.LayerNorm(3))
    assert scratch.LayerNorm([3]).normalized_shape == nn.LayerNorm([3]).normalized_shape == (3,)
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        bn.forward(np.ones((1, 3)))
    assert bn.eval().forward(np.ones((1, 3))).shape == (1, 3)  # evaluation takes one example
    with pytest.raises(TypeError, match="float64 weights but got float32 input"):
        bn.forward(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        scratch.LayerNorm(3).backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"normalized_shape must be D or \(D,\), got \(3, 4\)"):
        scratch.LayerNorm((3, 4))


def test_backward_follows_the_mode_of_its_forward() -> None:
    """Forward in training mode, then eval(), then backward: the training-mode gradient (the
    batch's mean and var depended on x), as autograd's graph would give."""
    layer = trained(NORMS["batch"], np.float64, training=True)
    x, upstream = batch(8), batch(8, seed=5)
    layer.forward(x)
    expected = layer.backward(upstream)
    layer.forward(x)
    assert np.array_equal(layer.eval().backward(upstream), expected)


# ---------------------------------------------------------------- in the twins


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm", list(NORMS))
def test_parity_in_a_network(norm: str, dtype: str) -> None:
    """Every row within tolerance (float64: max rel 1e-12), the buffers after the two
    training-mode passes, and the evaluation-mode outputs and gradients."""
    arch = Architecture((30, 16, 12, 10), "relu", norm=norm)
    report = run_parity(arch, dtype=dtype, batch_size=16)
    assert_rows_ok(report.rows, dtype, f"parity --norm {norm}")
    if dtype == "float64":
        assert report.max_rel_error <= tolerance.FLOAT64_MAX_REL, report.table()
    buffers = {(r.layer, r.tensor) for r in report.rows if r.section == "buffers"}
    expected = {f"{index} {NORMS[norm].torch}" for index in (1, 4)}
    assert buffers == {(layer, name) for layer in expected
                       for name in NORMS[norm].scratch.buffer_names}
    assert {r.layer for r in report.rows if r.section == "eval forward"} >= expected
    cancelled = {(r.section, r.layer) for r in report.rows if r.term_scale is not None}
    if norm == "batch":  # the bias before batch norm: its true gradient is 0
        assert {("grad(upstream)", "0 Linear"), ("grad(upstream)", "3 Linear")} <= cancelled
    assert report.to_json()["norm"] == norm


def test_the_cancelled_bias_gradient_is_the_noise_it_should_be() -> None:
    """Both twins' db before batch norm are rounding noise (the true value is 0); S is the size
    of what was summed, so the noise is a few eps of S."""
    report = run_parity(Architecture((30, 16, 10), "relu", norm="batch"), batch_size=16)
    row = next(r for r in report.rows if r.section == "grad(upstream)" and r.tensor == "db"
               and r.layer == "0 Linear")
    assert row.term_scale is not None and row.ok
    assert row.max_abs_error <= 64 * np.finfo(np.float64).eps * row.term_scale
    assert "* 2 gradients whose sum over the batch cancels" in report.table()


def network_report() -> compare.LayerReport:
    return run_parity(Architecture((30, 16, 12, 10), "relu", norm="batch"), batch_size=16)


def failing(report: compare.LayerReport) -> set[tuple[str, str, str]]:
    return {(r.section, r.layer, r.tensor) for r in report.rows if not r.ok}


def test_a_wrong_dgamma_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """dgamma off by one part in 1e9 fails the torch rows of that layer, and nothing else."""
    backward = normalization.Normalization.backward

    def off(self: scratch.BatchNorm1d, grad_out: np.ndarray) -> np.ndarray:
        dx = backward(self, grad_out)
        if self.num_features == 16:
            self.weight.grad *= 1 + 1e-9
        return dx

    monkeypatch.setattr(normalization.Normalization, "backward", off)
    sections = ("grad(upstream)", "grad(cross-entropy)", "eval grad(upstream)")
    assert failing(network_report()) == {(s, "1 BatchNorm1d", "dgamma") for s in sections}


def test_a_wrong_batch_norm_dx_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """dX without the term through var: the torch rows and the finite differences fail."""
    def without_var(g: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axis: int
                    ) -> np.ndarray:
        return (g - g.mean(axis=axis, keepdims=True)) * inv_std

    monkeypatch.setattr(normalization, "standardize_backward", without_var)
    bad = failing(network_report())
    assert {("grad(upstream)", "1 BatchNorm1d", "dX"), ("grad(cross-entropy)", "4 BatchNorm1d",
                                                        "dX")} <= bad
    assert {section for section, _, _ in bad} >= {"finite-diff grad(upstream)",
                                                  "finite-diff grad(cross-entropy)"}
    assert not any(section.startswith("eval") for section, _, _ in bad)


def test_an_error_in_a_cancelled_sum_is_still_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The db before batch norm is ~1e-16 noise in both twins; 1e-10 added to it is 1e-10 of
    S, past 1e-12: S is no hole in the check."""
    planted = scratch.Linear.backward_parameters

    def backward_parameters(self: scratch.Linear, grad_out: np.ndarray) -> None:
        planted(self, grad_out)
        if self.in_features == 30:
            self.bias.grad[3] += 1e-10

    monkeypatch.setattr(scratch.Linear, "backward_parameters", backward_parameters)
    report = network_report()
    bad = [r for r in report.rows if not r.ok and not r.section.startswith("finite-diff")]
    assert {(r.section, r.layer, r.tensor) for r in bad} == {
        (s, "0 Linear", "db") for s in ("grad(upstream)", "grad(cross-entropy)",
                                        "eval grad(upstream)")}
    assert all(r.worst == (3,) for r in bad)


def test_s_is_the_sum_of_each_examples_term() -> None:
    """For a Linear layer, S of db is max_j Σ_n |g_nj| and S of dW is max (|x|ᵀ|g|)."""
    rng = np.random.default_rng(0)
    layer = nn.Linear(5, 4, dtype=torch.float64)
    x = torch.from_numpy(rng.standard_normal((9, 5)))
    upstream = torch.from_numpy(rng.standard_normal((9, 4)))
    output = layer(x)
    assert summed_terms(output, upstream, layer.bias) == pytest.approx(
        upstream.abs().sum(0).max().item(), rel=1e-14)
    assert summed_terms(output, upstream, layer.weight) == pytest.approx(
        (upstream.abs().T @ x.abs()).max().item(), rel=1e-14)


@pytest.mark.parametrize(("rows", "size", "last"), [(257, 32, (224, 257)), (33, 32, (0, 33)),
                                                    (1, 32, (0, 1)), (5, 1, (4, 5))])
def test_a_lone_last_example_joins_the_batch_before_it(rows: int, size: int,
                                                       last: tuple[int, int]) -> None:
    bounds = batch_bounds(rows, size)
    assert bounds[-1] == last and len(bounds) == steps_per_epoch(rows, size)
    assert [start for start, _ in bounds[1:]] == [stop for _, stop in bounds[:-1]]


def test_batch_bounds_never_leave_one_example_alone() -> None:
    for rows in range(1, 80):
        for size in range(1, 12):
            bounds = batch_bounds(rows, size)
            assert len(bounds) == steps_per_epoch(rows, size), (rows, size)
            assert bounds[0][0] == 0 and bounds[-1][1] == rows
            assert size == 1 or rows == 1 or min(b - a for a, b in bounds) >= 2, (rows, size)


# ---------------------------------------------------------------- training runs


def scratch_and_torch(run: Path) -> tuple[checkpoint.Checkpoint, checkpoint.Checkpoint]:
    return (checkpoint.read(run / "scratch" / "checkpoint.npz"),
            checkpoint.read(run / "torch" / "checkpoint.pt"))


@pytest.mark.parametrize("norm", list(NORMS))
def test_lockstep_keeps_weights_and_buffers_together(data_dir: Path, tmp_path: Path, norm: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    """Two float64 epochs (18 steps) of --lockstep with each normalization: every parameter and
    buffer of the twins within 1e-12 at the end (the run stops itself past 1e-9)."""
    status, results, err = train(data_dir, tmp_path, "--arch", NORM_ARCH, "--norm", norm,
                                 "--lockstep", "--dtype", "float64", capsys=capsys)
    assert status == 0 and len(results) == 2, err
    mine, theirs = scratch_and_torch(tmp_path / "run")
    assert mine.state.keys() == theirs.state.keys()
    assert_states_close(mine.state, theirs.state, f"--norm {norm} after 2 epochs")
    if norm == "batch":
        assert int(mine.state["1.num_batches_tracked"]) == 2 * steps_per_epoch(270, 32) == 18
    drift = events(tmp_path / "run" / "parity").Scalars("Parity/max_weight_rel_diff")
    assert len(drift) == 18 and max(e.value for e in drift) <= tolerance.FLOAT64_MAX_REL


def test_an_epoch_ending_in_one_example_trains_with_batch_norm(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """257 training images in batches of 32: the lone last one joins the batch before it, in
    both twins (8 steps, not 9, and never a batch norm of one example)."""
    status, results, err = train(data_dir, tmp_path, "--arch", NORM_ARCH, "--norm", "batch",
                                 "--val-size", "43", "--epochs", "1", "--lockstep", "--dtype",
                                 "float64", capsys=capsys)
    assert status == 0, err
    assert {r["backend"] for r in results} == {"scratch", "torch"}
    mine, theirs = scratch_and_torch(tmp_path / "run")
    assert int(mine.state["4.num_batches_tracked"]) == 8 == int(theirs.state[
        "4.num_batches_tracked"])
    assert_states_close(mine.state, theirs.state, "an epoch of 257")


def test_a_training_set_of_one_is_refused_with_batch_norm(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status, _, err = train(data_dir, tmp_path, "--norm", "batch", "--val-size", "299",
                           capsys=capsys)
    assert status == 2 and err.strip().splitlines()[-1] == (
        "error: --norm batch with a training set of 1 example (--val-size leaves the rest): "
        "batch norm normalizes each feature over the batch, which needs at least 2 examples")
    assert not (tmp_path / "run").exists()


def test_resume_mid_epoch_is_bit_exact_with_batch_norm(data_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped after 5 of 18 steps (Adam) and resumed: the weights, running estimates and counts
    of both twins np.array_equal to a straight run's (assert_same_run compares every array of
    the state dicts, and the scalars)."""
    flags = ["--arch", NORM_ARCH, "--norm", "batch", *OPTIMIZERS["adam"]]
    assert train(data_dir, tmp_path / "straight", *flags, capsys=capsys)[0] == 0
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", StopAfterSteps)
        count_steps(patch, 5)
        assert train(data_dir, tmp_path / "resumed", *flags, capsys=capsys)[0] == 130
    assert cli.main(["train", "--resume", str(tmp_path / "resumed" / "run")]) == 0
    assert_same_run(tmp_path / "resumed" / "run", tmp_path / "straight" / "run")
    state = checkpoint.read(tmp_path / "resumed" / "run" / "torch" / "checkpoint.pt").state
    assert int(state["1.num_batches_tracked"]) == 2 * 9


@pytest.fixture(scope="module")
def batch_norm_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of both twins with --norm batch, insight on, float64."""
    logdir = tmp_path_factory.mktemp("runs")
    assert cli.main(["train", "--data-dir", str(data_dir), "--arch", NORM_ARCH, "--norm", "batch",
                     "--epochs", "1", "--batch-size", "32", "--val-size", "30", "--dtype",
                     "float64", "--logdir", str(logdir), "--run-name", "run", "--json"]) == 0
    return logdir / "run"


def test_checkpoints_hold_the_buffers_by_torchs_names(batch_norm_run: Path) -> None:
    """The .pt's state dict loads, strictly, into a plain torch_ref network with batch norm,
    which then answers as the checkpoint's network does."""
    saved = torch.load(batch_norm_run / "torch" / "checkpoint.pt", weights_only=True)
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked",
            "4.running_mean"} <= saved["state_dict"].keys()
    assert saved["state_dict"]["1.num_batches_tracked"].dtype == torch.int64
    plain = torch_ref.mlp([64, 16, 12, 10], nn.ReLU, dtype=torch.float64,
                          norm=functools.partial(nn.BatchNorm1d, dtype=torch.float64))
    plain.load_state_dict(saved["state_dict"])
    _, loaded = checkpoint.load(batch_norm_run / "scratch" / "checkpoint.npz")
    x = np.random.default_rng(3).standard_normal((12, 64))
    with torch.no_grad():
        expected = plain.eval()(torch.from_numpy(x)).numpy()
    assert tolerance.FLOAT64.passes(loaded.eval().forward(x), expected)
    assert loaded[1].num_batches_tracked == saved["state_dict"]["1.num_batches_tracked"].item()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("1.num_batches_tracked", np.array(9.0), "1.num_batches_tracked should hold int64 values"),
    ("1.num_batches_tracked", np.array(-1), "1.num_batches_tracked holds a negative count"),
    ("1.running_var", np.ones(3), r"1.running_var should have shape \(16,\)"),
    ("1.running_var", np.full(16, -1e-3), "1.running_var holds a negative variance")])
def test_a_bad_buffer_in_a_checkpoint_is_named(batch_norm_run: Path, tmp_path: Path, name: str,
                                               value: np.ndarray, message: str,
                                               capsys: pytest.CaptureFixture) -> None:
    saved = checkpoint.read(batch_norm_run / "scratch" / "checkpoint.npz")
    path = tmp_path / "checkpoint.npz"
    checkpoint.save_npz(path, saved.state | {name: value}, saved.meta)
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {path}: "), err
    assert re.search(message, err), err


def test_insight_and_evaluate_with_batch_norm(batch_norm_run: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    """Gradient norms of the Linear weights only (batch norm's gamma is no Linear), histograms
    of the running estimates but not of the count, the hidden activations and every picture;
    each checkpoint evaluated by either twin gives one accuracy."""
    for twin in ("scratch", "torch"):
        run = events(batch_norm_run / twin)
        scalars, histograms = set(run.Tags()["scalars"]), set(run.Tags()["histograms"])
        assert {t for t in scalars if t.startswith("GradNorm/")} == {
            f"GradNorm/{i}.weight" for i in (0, 3, 6)}
        assert {"Weights/1.running_mean", "Weights/4.running_var", "Activations/hidden1",
                "Activations/hidden2"} <= histograms
        assert "Weights/1.num_batches_tracked" not in histograms
        assert {"Neurons/first_layer", "Answers/probabilities"} <= set(run.Tags()["images"])
    accuracies = set()
    for path in (batch_norm_run / "scratch" / "checkpoint.npz",
                 batch_norm_run / "torch" / "checkpoint.pt"):
        for twin in ("scratch", "torch"):
            assert cli.main(["evaluate", "--checkpoint", str(path), "--backend", twin]) == 0
            accuracies.add(capsys.readouterr().out.split("test accuracy ")[1].strip())
    assert len(accuracies) == 1, accuracies
