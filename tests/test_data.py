"""compare.data: IDX reading, file discovery, validation split, normalization."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from compare.data import (
    DATASETS,
    FILES,
    DataError,
    Splits,
    default_val_size,
    find_idx_files,
    idx,
    load_splits,
    read_idx,
)
from compare.data import download as downloading
from compare.data import splits as split_loading
from compare.data.files import SAMPLE, DataNotFoundError
from tests import helpers
from tests.helpers import SHARED_SUBSET, idx_bytes, write_idx

N_TRAIN, N_TEST, SIDE = 40, 12, 4
DOWNLOADABLE = [name for name in DATASETS if name != SAMPLE]


def make_arrays(seed: int = 1) -> dict[str, np.ndarray]:
    """Return small random dataset arrays keyed like FILES: images (N, 4, 4), labels (N,)."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (N_TRAIN, SIDE, SIDE), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, SIDE, SIDE), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def write_dataset(folder: Path, arrays: dict[str, np.ndarray] | None = None, *, gz: bool = False
                  ) -> dict[str, Path]:
    """The four IDX files of :func:`make_arrays` (or ``arrays``) in ``folder``."""
    return helpers.write_dataset(folder, make_arrays() if arrays is None else arrays, gz=gz)


@pytest.fixture(params=[None, 7, 40], ids=["block-default", "block-7", "block-40"])
def block_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with the default read block size and with tiny ones (many blocks per file)."""
    if request.param is not None:
        monkeypatch.setattr(idx, "_BLOCK_BYTES", request.param)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every download inside download() fail as on a machine without network."""
    def urlopen(*_: object, **__: object) -> None:
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr("urllib.request.urlopen", urlopen)


# ---------------------------------------------------------------- read_idx


@pytest.mark.usefixtures("block_bytes")
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(7,), (5, 3, 2), (0, 28, 28), (3, 0, 5)])
def test_read_idx_round_trip(tmp_path: Path, gz: bool, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / "x-idx-ubyte", array, gz=gz)
    got = read_idx(path)
    assert got.dtype == np.uint8
    assert got.shape == shape
    np.testing.assert_array_equal(got, array)


VALID = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))  # header is 16 bytes


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x01" + VALID[1:], "bad magic number"),
        (b"\x1f\x8b" + VALID[2:], "looks gzip-compressed"),
        (VALID[:2] + b"\x0d" + VALID[3:], "data type byte 0x0d"),
        (VALID[:3] + b"\x02" + VALID[4:], "says 2 dimensions"),
        (VALID[:-1], "payload is 23 bytes, header says 2x3x4 = 24"),
        (VALID + b"\x00\x00", "payload is 26 bytes, header says 2x3x4 = 24 (2 trailing bytes)"),
        (VALID[:2], "truncated header: 2 bytes"),
        (VALID[:10], "truncated header: 10 bytes, 3 dimensions need 16"),
        (b"", "truncated header: 0 bytes"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.usefixtures("block_bytes")
def test_read_idx_corruption(tmp_path: Path, raw: bytes, problem: str, gz: bool) -> None:
    path = tmp_path / ("bad-idx3-ubyte.gz" if gz else "bad-idx3-ubyte")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match="bad-idx3-ubyte") as info:
        read_idx(path)
    assert problem in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda gz: gz[: len(gz) // 2], id="truncated-stream"),
        pytest.param(lambda gz: gz[:3] + b"\xff" + gz[4:], id="bad-flags"),
        pytest.param(lambda gz: b"\x1f\x8bnot gzip at all", id="garbage"),
        pytest.param(lambda gz: gz[:-8] + b"\x00" * 8, id="bad-crc"),
        pytest.param(lambda gz: gz[:12] + b"\xff" * 8 + gz[20:], id="bad-deflate"),
    ],
)
def test_read_idx_corrupt_gzip(tmp_path: Path, mangle: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(mangle(gzip.compress(VALID)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt gzip stream \("):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing-here-idx1-ubyte: cannot read file"):
        read_idx(tmp_path / "nothing-here-idx1-ubyte")


# ---------------------------------------------------------------- find_idx_files


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("layout", ["torchvision", "flat"])
@pytest.mark.parametrize("gz", [False, True])
def test_find_idx_files_layouts(tmp_path: Path, dataset: str, layout: str, gz: bool) -> None:
    folder = tmp_path / DATASETS[dataset] / "raw" if layout == "torchvision" else tmp_path
    written = write_dataset(folder, gz=gz)
    assert find_idx_files(tmp_path, dataset) == written


def test_find_idx_files_prefers_torchvision_folder_and_plain_file(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    raw = write_dataset(tmp_path / "MNIST" / "raw")
    write_dataset(tmp_path / "MNIST" / "raw", gz=True)
    assert find_idx_files(tmp_path, "mnist") == raw


def test_find_idx_files_needs_all_four_in_one_folder(tmp_path: Path) -> None:
    paths = write_dataset(tmp_path / "MNIST" / "raw")
    paths["test_labels"].unlink()
    write_idx(tmp_path / FILES["test_labels"], make_arrays()["test_labels"])
    assert find_idx_files(tmp_path, "mnist") is None
    assert find_idx_files(tmp_path / "does-not-exist", "mnist") is None
    write_dataset(tmp_path / "FashionMNIST" / "raw")
    assert find_idx_files(tmp_path, "mnist") is None  # the other dataset's folder does not count


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"--dataset 'cifar'.*mnist, fashion-mnist"):
        load_splits(tmp_path, "cifar")
    with pytest.raises(DataError, match="--dataset"):
        find_idx_files(tmp_path, "cifar")


# ---------------------------------------------------------------- missing files / download


@pytest.mark.parametrize("dataset", DOWNLOADABLE)
@pytest.mark.usefixtures("no_network")
def test_missing_files_download_fails(tmp_path: Path, dataset: str) -> None:
    with pytest.raises(DataError) as info:
        load_splits(tmp_path, dataset)
    message = str(info.value)
    assert f"{tmp_path / DATASETS[dataset] / 'raw'}/" in message
    assert f"{tmp_path}/" in message
    assert all(name in message for name in FILES.values())
    assert ".gz" in message
    assert "download failed: DownloadError: " in message
    assert "Name or service not known" in message
    assert ("apt-get install dataset-fashion-mnist" in message) == (dataset == "fashion-mnist")


def test_missing_files_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> None:
        pytest.fail("download() must not be called")

    monkeypatch.setattr(split_loading, "download", fail)
    with pytest.raises(DataError, match=r"not found.*download not requested"):
        load_splits(tmp_path, download_missing=False)


def fake_fetch(monkeypatch: pytest.MonkeyPatch, *, writes: bool) -> list[tuple[str, Path]]:
    """Replace the mirrors' fetch by one that records its calls (and writes files)."""
    calls: list[tuple[str, Path]] = []

    def fetch(folder: str, raw: Path) -> None:
        calls.append((folder, raw))
        if writes:
            write_dataset(raw, gz=True)

    monkeypatch.setattr(downloading, "fetch", fetch)
    return calls


def test_download_then_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_fetch(monkeypatch, writes=True)
    splits = load_splits(tmp_path, "fashion-mnist", val_size=4)
    assert calls == [("FashionMNIST", tmp_path / "FashionMNIST" / "raw")]
    assert splits.source["train_images"].parent == tmp_path / "FashionMNIST" / "raw"
    assert splits.train_x.shape == (N_TRAIN - 4, SIDE * SIDE)


def test_download_leaves_files_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_fetch(monkeypatch, writes=False)
    with pytest.raises(DataError, match=r"not found.*download succeeded but"):
        load_splits(tmp_path)


def test_module_does_not_import_torch() -> None:
    code = "import sys, compare.data; assert not {'torch', 'torchvision'} & set(sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ---------------------------------------------------------------- consistency checks


def test_label_out_of_range(tmp_path: Path) -> None:
    arrays = make_arrays()
    arrays["test_labels"][5] = 10
    arrays["test_labels"][7] = 200
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label at index 5 is 10"):
        load_splits(tmp_path, download_missing=False)


@pytest.mark.parametrize("role", ["train", "test"])
def test_count_mismatch(tmp_path: Path, role: str) -> None:
    arrays = make_arrays()
    arrays[f"{role}_labels"] = arrays[f"{role}_labels"][:-3]
    write_dataset(tmp_path, arrays)
    n = N_TRAIN if role == "train" else N_TEST
    with pytest.raises(DataError) as info:
        load_splits(tmp_path, download_missing=False)
    message = str(info.value)
    assert FILES[f"{role}_images"] in message
    assert FILES[f"{role}_labels"] in message
    assert f"{n} images" in message
    assert f"{n - 3} labels" in message


@pytest.mark.parametrize(
    ("role", "array", "expected"),
    [
        ("train_images", np.zeros(N_TRAIN, dtype=np.uint8), "train-images-idx3-ubyte: expected 3"),
        ("test_labels", np.zeros((N_TEST, 2, 2), np.uint8), "t10k-labels-idx1-ubyte: expected 1"),
        ("test_images", np.zeros((N_TEST, 5, 5), np.uint8), "image sizes differ"),
    ],
)
def test_shape_problems(tmp_path: Path, role: str, array: np.ndarray, expected: str) -> None:
    arrays = make_arrays()
    arrays[role] = array
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError, match=expected):
        load_splits(tmp_path, download_missing=False)


def test_corrupt_file_in_dataset(tmp_path: Path) -> None:
    paths = write_dataset(tmp_path)
    paths["train_images"].write_bytes(paths["train_images"].read_bytes()[:-5])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: payload is"):
        load_splits(tmp_path, download_missing=False)


def test_constant_pixels(tmp_path: Path) -> None:
    arrays = make_arrays()
    arrays["train_images"][:] = 7
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: all .* equal 7"):
        load_splits(tmp_path, download_missing=False)


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize(("n", "expected"), [(60000, 5000), (50000, 5000), (15604, 1560), (10, 1)])
def test_default_val_size(n: int, expected: int) -> None:
    assert default_val_size(n) == expected


@pytest.mark.parametrize("val_size", [-1, N_TRAIN, N_TRAIN + 1])
def test_val_size_out_of_range(tmp_path: Path, val_size: int) -> None:
    write_dataset(tmp_path)
    with pytest.raises(DataError, match=rf"--val-size {val_size} .*< {N_TRAIN}"):
        load_splits(tmp_path, val_size=val_size, download_missing=False)


def rows_of(x: np.ndarray, splits: Splits, images: np.ndarray) -> np.ndarray:
    """Return, for each row of normalized ``x``, its row index in the raw (N, H, W) ``images``."""
    raw = np.rint((x * splits.std + splits.mean) * 255).astype(np.int64)
    flat = images.reshape(len(images), -1).astype(np.int64)
    matches = (raw[:, None, :] == flat[None, :, :]).all(axis=2)
    assert (matches.sum(axis=1) == 1).all()
    return matches.argmax(axis=1)


@pytest.mark.usefixtures("block_bytes")
@pytest.mark.parametrize("gz", [False, True])
def test_split_sizes_cover_and_order(tmp_path: Path, gz: bool) -> None:
    arrays = make_arrays()
    write_dataset(tmp_path / "MNIST" / "raw", arrays, gz=gz)
    splits = load_splits(tmp_path, val_size=10, seed=3, download_missing=False)
    assert splits.train_x.shape == (N_TRAIN - 10, SIDE * SIDE)
    assert splits.val_x.shape == (10, SIDE * SIDE)
    assert splits.test_x.shape == (N_TEST, SIDE * SIDE)
    assert splits.train_y.shape == (N_TRAIN - 10,)
    assert splits.val_y.shape == (10,)
    train_rows = rows_of(splits.train_x, splits, arrays["train_images"])
    val_rows = rows_of(splits.val_x, splits, arrays["train_images"])
    assert (np.diff(train_rows) > 0).all()
    assert (np.diff(val_rows) > 0).all()
    assert sorted([*train_rows, *val_rows]) == list(range(N_TRAIN))
    np.testing.assert_array_equal(splits.train_y, arrays["train_labels"][train_rows])
    np.testing.assert_array_equal(splits.val_y, arrays["train_labels"][val_rows])
    np.testing.assert_array_equal(
        rows_of(splits.test_x, splits, arrays["test_images"]), np.arange(N_TEST)
    )
    np.testing.assert_array_equal(splits.test_y, arrays["test_labels"])
    perm = np.random.default_rng(3).permutation(N_TRAIN)
    np.testing.assert_array_equal(val_rows, np.sort(perm[:10]))


def test_split_determinism(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    first = load_splits(tmp_path, val_size=10, seed=5, download_missing=False)
    again = load_splits(tmp_path, val_size=10, seed=5, download_missing=False)
    other = load_splits(tmp_path, val_size=10, seed=6, download_missing=False)
    np.testing.assert_array_equal(first.val_x, again.val_x)
    np.testing.assert_array_equal(first.train_x, again.train_x)
    np.testing.assert_array_equal(first.val_y, again.val_y)
    assert not np.array_equal(first.val_x, other.val_x)


def test_val_size_zero_and_default(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    empty = load_splits(tmp_path, val_size=0, download_missing=False)
    assert empty.val_x.shape == (0, SIDE * SIDE)
    assert empty.val_y.shape == (0,)
    assert empty.train_x.shape == (N_TRAIN, SIDE * SIDE)
    default = load_splits(tmp_path, download_missing=False)
    assert default.val_x.shape == (default_val_size(N_TRAIN), SIDE * SIDE)


@pytest.mark.usefixtures("block_bytes")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalization(tmp_path: Path, dtype: type) -> None:
    arrays = make_arrays()
    write_dataset(tmp_path, arrays)
    splits = load_splits(tmp_path, val_size=8, dtype=dtype, download_missing=False)
    for x in (splits.train_x, splits.val_x, splits.test_x):
        assert x.dtype == dtype
        assert x.flags.c_contiguous
    for y in (splits.train_y, splits.val_y, splits.test_y):
        assert y.dtype == np.int64
    train = splits.train_x.astype(np.float64)
    assert abs(train.mean()) < 1e-5
    assert abs(train.std() - 1.0) < 1e-5
    train_rows = rows_of(splits.train_x, splits, arrays["train_images"])
    raw = arrays["train_images"][train_rows].astype(np.float64) / 255
    assert splits.mean == pytest.approx(raw.mean(), rel=1e-12)
    assert splits.std == pytest.approx(raw.std(), rel=1e-12)
    expected_test = (arrays["test_images"].reshape(N_TEST, -1) / 255 - raw.mean()) / raw.std()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(splits.test_x, expected_test, rtol=tol, atol=tol)


def test_non_float_dtype_rejected(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    with pytest.raises(ValueError, match="floating-point"):
        load_splits(tmp_path, dtype=np.int32, download_missing=False)


# ---------------------------------------------------------------- real data


@pytest.mark.usefixtures("mnist_subset")
def test_shared_mnist_subset() -> None:
    splits = load_splits(SHARED_SUBSET, "mnist", download_missing=False)
    assert splits.source["train_images"] == SHARED_SUBSET / "MNIST/raw/train-images-idx3-ubyte"
    assert splits.train_x.shape == (15604 - 1560, 784)
    assert splits.val_x.shape == (1560, 784)
    assert splits.test_x.shape == (10000, 784)
    assert splits.train_x.dtype == np.float32
    assert 0.12 < splits.mean < 0.14
    assert 0.29 < splits.std < 0.33
    assert abs(float(np.mean(splits.train_x, dtype=np.float64))) < 1e-4
    assert abs(float(np.mean(splits.test_x, dtype=np.float64))) < 0.05
    assert set(np.unique(splits.train_y)) == set(range(10))


# ---------------------------------------------------------------- the bundled sample and its edges


def test_the_bundled_sample_loads_anywhere(tmp_path: Path) -> None:
    """10,000 training and 2,000 test images of real MNIST, whatever data_dir says."""
    splits = load_splits(tmp_path / "ignored", SAMPLE)
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (9000, 1000, 2000)
    assert splits.train_x.shape[1] == 784 and set(np.unique(splits.test_y)) == set(range(10))
    assert 0.12 < splits.mean < 0.14


def test_a_folder_in_place_of_a_file_is_named_and_no_download_is_tried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split_loading, "download", lambda *_: pytest.fail("download tried"))
    write_dataset(tmp_path)
    (tmp_path / FILES["test_images"]).unlink()
    (tmp_path / FILES["test_images"]).mkdir()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: is a folder"):
        load_splits(tmp_path)


@pytest.mark.parametrize("role", ["train", "test"])
def test_a_split_without_images_is_refused_before_training(tmp_path: Path, role: str) -> None:
    arrays = make_arrays()
    arrays[f"{role}_images"] = arrays[f"{role}_images"][:0]
    arrays[f"{role}_labels"] = arrays[f"{role}_labels"][:0]
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError, match=f"{FILES[role + '_images']}: holds no images"):
        load_splits(tmp_path, val_size=0, download_missing=False)


def test_missing_files_are_a_data_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        load_splits(tmp_path, download_missing=False)
