"""End-to-end training on small IDX files the tests write: both backends, TensorBoard events,
checkpoints, lockstep, the non-finite stop, and the errors a user can run into."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from compare import cli
from compare.harness import tolerance
from compare.training import checkpoint
from compare.training.config import EpochOrders
from compare.training.scratch_backend import ScratchBackend
from tests.helpers import ARCH, SHARED_SUBSET, events, train

SCALARS = {"Loss/train", "Loss/val", "Accuracy/val", "Accuracy/test", "Time/epoch_seconds",
           "GradNorm/0.weight", "GradNorm/2.weight", "hparam/test_accuracy",
           "hparam/final_train_loss"}


def test_both_backends_log_the_same_tags(data_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    """The epoch-level tags (the only ones with --no-insight; tests/test_insight.py checks the
    rest). float64, so the twins' figures agree on any CPU's BLAS kernels."""
    status, results, _ = train(data_dir, tmp_path, "--no-insight", "--dtype", "float64",
                               capsys=capsys)
    assert status == 0
    assert [r["backend"] for r in results] == ["scratch", "torch"]
    for result in results:
        assert result.keys() >= {"backend", "test_accuracy", "final_train_loss", "epoch_seconds",
                                 "run_dir"}
        assert len(result["epoch_seconds"]) == 2
        assert result["test_accuracy"] > 0.5, "the patterns are easy: far above chance (0.1)"
        run = events(Path(result["run_dir"]))
        assert set(run.Tags()["scalars"]) == SCALARS
        assert [e.step for e in run.Scalars("Loss/train")] == [1, 2]
        assert [e.step for e in run.Scalars("Accuracy/test")] == [2]
        assert set(run.Tags()["histograms"]) == {"Weights/0.weight", "Weights/0.bias",
                                                 "Weights/2.weight", "Weights/2.bias"}
        assert [e.step for e in run.Histograms("Weights/0.weight")] == [1, 2]
    assert results[0]["final_train_loss"] == pytest.approx(
        results[1]["final_train_loss"], rel=tolerance.TRAINING_LOCKSTEP_FLOAT64_MAX_REL)


def test_val_size_zero_trains_on_every_image_and_logs_no_validation(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status, results, err = train(data_dir, tmp_path, "--val-size", "0", capsys=capsys)
    assert status == 0, err
    assert err.count("no validation split") == 4, "2 epochs x 2 backends say so"
    for result in results:  # insight probes the first training images instead
        tags = set(events(Path(result["run_dir"])).Tags()["scalars"])
        assert SCALARS - {"Loss/val", "Accuracy/val"} <= tags and "Loss/val" not in tags
        assert "DeadUnits/hidden1" in tags
    assert not (tmp_path / "run" / "parity").exists()


def test_lockstep_float64_logs_parity_every_step(data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    status, results, _ = train(data_dir, tmp_path, "--lockstep", "--dtype", "float64",
                               capsys=capsys)
    assert status == 0
    assert results[0]["final_train_loss"] == pytest.approx(results[1]["final_train_loss"],
                                                           rel=tolerance.FLOAT64_MAX_REL)
    parity = events(tmp_path / "run" / "parity")
    diffs = parity.Scalars("Parity/max_weight_rel_diff")
    assert [e.step for e in diffs] == list(range(1, 2 * 9 + 1))  # 270 images / 32 = 9 steps
    limit = tolerance.TRAINING_LOCKSTEP_FLOAT64_MAX_REL
    assert max(e.value for e in diffs) <= limit
    assert max(e.value for e in parity.Scalars("Parity/loss_abs_diff")) <= limit


def test_lockstep_fails_loudly_when_the_twins_drift(data_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    original = ScratchBackend.train_step

    def drifting_step(self: ScratchBackend, x: np.ndarray, y: np.ndarray) -> None:
        original(self, x, y)
        self.model[0].W[0, 0] += 1e-6

    monkeypatch.setattr(ScratchBackend, "train_step", drifting_step)
    status, _, err = train(data_dir, tmp_path, "--lockstep", "--dtype", "float64", capsys=capsys)
    assert status == 1
    assert "--lockstep: after step 1" in err and "over the limit 1e-09" in err


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status, _, err = train(data_dir, tmp_path, "--backend", "scratch", "--lr", "1e30",
                           capsys=capsys)
    assert status == 1
    assert "scratch: the loss is nan at epoch 1, step" in err and "learning rate 1e+30" in err
    kept = tmp_path / "run" / "scratch" / "checkpoint.npz"
    meta, model = checkpoint.load(kept)
    assert meta["epoch"] == 0
    assert all(np.all(np.isfinite(p.value)) for p in model.parameters())


@pytest.mark.parametrize("written_by", ["scratch", "torch"])
def test_checkpoints_load_into_either_backend(data_dir: Path, tmp_path: Path, written_by: str,
                                              capsys: pytest.CaptureFixture) -> None:
    # float64: in float32 the twins' products round differently, and an image whose two best
    # classes are that close could be counted differently by each
    _, results, _ = train(data_dir, tmp_path, "--backend", written_by, "--dtype", "float64",
                          capsys=capsys)
    path = tmp_path / "run" / written_by / f"checkpoint{checkpoint.SUFFIXES[written_by]}"
    accuracies = {}
    for backend in ["scratch", "torch"]:
        assert cli.main(["evaluate", "--checkpoint", str(path), "--backend", backend,
                         "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["written_by"] == written_by and report["epoch"] == 2
        accuracies[backend] = report["test_accuracy"]
    assert accuracies["scratch"] == accuracies["torch"] == results[0]["test_accuracy"]
    _, as_scratch = checkpoint.load(path, "scratch")
    _, as_torch = checkpoint.load(path, "torch")
    for layer, reference in zip([as_scratch[0], as_scratch[2]], [as_torch[0], as_torch[2]],
                                strict=True):
        assert np.array_equal(layer.W, reference.weight.detach().numpy().T)
        assert np.array_equal(layer.b, reference.bias.detach().numpy())


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"\x80garbage"])
@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_corrupt_checkpoint_is_named(tmp_path: Path, suffix: str, content: bytes,
                                     capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / f"checkpoint{suffix}"
    path.write_bytes(content)
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 2
    assert f"{path}: not a readable checkpoint" in capsys.readouterr().err


def test_same_seed_same_numbers_and_runs_never_overwrite(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = train(data_dir, tmp_path, "--backend", "scratch", capsys=capsys)[1][0]
    second = train(data_dir, tmp_path, "--backend", "scratch", capsys=capsys)[1][0]
    assert first["final_train_loss"] == second["final_train_loss"]
    assert first["test_accuracy"] == second["test_accuracy"]
    assert Path(first["run_dir"]).parent.name == "run"
    assert Path(second["run_dir"]).parent.name == "run-2"


def test_scratch_training_never_imports_torch(data_dir: Path, tmp_path: Path) -> None:
    code = (f"import sys; from compare.cli import main; "
            f"status = main(['train', '--backend', 'scratch', '--data-dir', {str(data_dir)!r}, "
            f"'--arch', {ARCH!r}, '--epochs', '1', '--val-size', '30', "
            f"'--logdir', {str(tmp_path)!r}]); "
            f"print(status, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.stdout.strip().splitlines()[-1] == "0 False", result.stderr


def test_epoch_orders_are_seeded_permutations() -> None:
    a, b = EpochOrders(100, seed=3), EpochOrders(100, seed=3)
    first = a.next().copy()
    assert np.array_equal(first, b.next()) and sorted(first) == list(range(100))
    assert not np.array_equal(first, a.next())
    assert not np.array_equal(first, EpochOrders(100, seed=4).next())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backend", "scratch", "--lockstep"], "--lockstep"),
        (["--arch", "100-10"], "--arch 100-10: the input width must be the image size 64"),
        (["--lr", "0"], "--lr"),
        (["--optimizer", "rmsprop"], "--optimizer"),
        (["--val-size", "300"], "--val-size"),
        (["--dataset", "cifar"], "--dataset"),
    ],
)
def test_bad_training_arguments_exit_2(data_dir: Path, tmp_path: Path, args: list[str],
                                       needle: str, capsys: pytest.CaptureFixture) -> None:
    status, results, err = train(data_dir, tmp_path, *args, capsys=capsys)
    assert status == 2 and results == []
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_missing_data_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    def offline(*_: object, **__: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)  # no download possible
    status, _, err = train(tmp_path / "empty", tmp_path / "runs", capsys=capsys)
    assert status == 2
    assert "train-images-idx3-ubyte" in err and str(tmp_path / "empty" / "MNIST" / "raw") in err
    assert not (tmp_path / "runs").exists(), "no partial run is left behind"


def test_corrupt_data_file_is_named(data_dir: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in (data_dir / "MNIST" / "raw").iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    labels = broken / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-12])
    status, _, err = train(broken, tmp_path / "runs", capsys=capsys)
    assert status == 2 and "train-labels-idx1-ubyte.gz" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(data_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    status, _, err = train(data_dir, tmp_path, "--device", "cuda", capsys=capsys)
    assert status == 2 and "--device cuda: CUDA is not available" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_backend_trains_on_cuda_like_on_cpu(data_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    _, on_cpu, _ = train(data_dir, tmp_path, "--backend", "torch", "--dtype", "float64",
                         capsys=capsys)
    _, on_gpu, _ = train(data_dir, tmp_path, "--backend", "torch", "--dtype", "float64",
                         "--device", "cuda", capsys=capsys)
    assert on_gpu[0]["device"].startswith("cuda")
    assert on_gpu[0]["final_train_loss"] == pytest.approx(
        on_cpu[0]["final_train_loss"], rel=tolerance.TRAINING_LOCKSTEP_FLOAT64_MAX_REL)


@pytest.mark.usefixtures("mnist_subset")
def test_one_epoch_on_real_mnist_subset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status = cli.main(["train", "--backend", "both", "--data-dir", str(SHARED_SUBSET),
                       "--epochs", "1", "--batch-size", "32", "--optimizer", "adam",
                       "--lr", "0.001", "--dtype", "float64", "--logdir",
                       str(tmp_path), "--json"])  # float64: the accuracy is the same on any CPU
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0
    for result in results:
        assert result["test_accuracy"] > 0.90, result
