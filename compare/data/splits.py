"""MNIST / Fashion-MNIST as normalized train / validation / test arrays, with a seeded
validation split.

Image files are streamed block by block straight into the float output arrays, so no full
uint8 (or float64) copy of an image file is ever held: peak memory is about the size of the
returned arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from compare.data.files import (
    NUM_CLASSES,
    SAMPLE,
    SAMPLE_DIR,
    DataNotFoundError,
    check_dataset,
    download,
    find_idx_files,
    not_found_text,
)
from compare.data.idx import (
    IMAGE_NDIM,
    DataError,
    allocate,
    idx_dims,
    iter_rows,
    open_idx,
    read_idx,
    shape_text,
)


class ValidationSizeError(DataError):
    """The validation split asked for does not fit in the training file."""


@dataclass(frozen=True, eq=False)
class Splits:
    """Normalized train / validation / test splits.

    Attributes:
        train_x: (N_train, H*W) float array, C-contiguous, normalized with the train-split stats.
        train_y: (N_train,) int64 labels in 0..9.
        val_x: (N_val, H*W), same dtype and normalization as train_x.
        val_y: (N_val,) int64.
        test_x: (N_test, H*W), same dtype and normalization as train_x.
        test_y: (N_test,) int64.
        mean: mean of the train-split pixels after scaling to [0, 1].
        std: standard deviation of the train-split pixels after scaling to [0, 1].
        source: the four files used, keyed like :data:`FILES`.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mean: float
    std: float
    source: dict[str, Path]


def default_val_size(n_train_file: int) -> int:
    """Return the validation size for a training file of ``n_train_file`` images.

    min(5000, round(0.1 * n_train_file)): 5000, or 10% when the file holds fewer than 50,000.
    """
    return min(5000, round(0.1 * n_train_file))


def _check_pair(
    image_dims: tuple[int, ...], labels: np.ndarray, image_path: Path, label_path: Path
) -> None:
    """Validate one image file header against its labels: shapes, counts, labels in 0..9."""
    if len(image_dims) != IMAGE_NDIM:
        raise DataError(f"{image_path}: expected 3 dimensions (N, H, W), got {len(image_dims)}")
    if labels.ndim != 1:
        raise DataError(f"{label_path}: expected 1 dimension (N,), got {labels.ndim}")
    if math.prod(image_dims[1:]) == 0:
        raise DataError(f"{image_path}: images have zero size {shape_text(image_dims[1:])}")
    if image_dims[0] != len(labels):
        raise DataError(
            f"{image_path} holds {image_dims[0]} images but {label_path} holds {len(labels)} labels"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        first = int(bad[0])
        raise DataError(
            f"{label_path}: label at index {first} is {int(labels[first])}, must be in "
            f"0..{NUM_CLASSES - 1}"
        )


def _read_images(
    path: Path, is_val: np.ndarray, dtype: np.dtype, hist: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stream an (N, H, W) image file into two float arrays of raw pixel values 0..255.

    Args:
        path: the image file.
        is_val: (N,) bool; rows where it is True go to the second array, the rest to the first.
        dtype: float dtype of the outputs (0..255 are exact in it).
        hist: optional (256,) int64 array; the pixel-value counts of the first array's rows are
            added to it.

    Returns:
        (N - n_val, H*W) and (n_val, H*W) C-contiguous arrays, each in file order.
    """
    with open_idx(path) as (dims, stream):
        pixels = math.prod(dims[1:])
        n_val = int(np.count_nonzero(is_val))
        kept = allocate((len(is_val) - n_val, pixels), dtype, path)
        held_out = allocate((n_val, pixels), dtype, path)
        start = n_kept = n_held = 0
        for block in iter_rows(path, stream, dims):
            flat = block.reshape(len(block), pixels)
            mask = is_val[start : start + len(block)]
            start += len(block)
            rows = flat[~mask]
            kept[n_kept : n_kept + len(rows)] = rows
            n_kept += len(rows)
            if hist is not None:
                hist += np.bincount(rows.ravel(), minlength=256)
            rows = flat[mask]
            held_out[n_held : n_held + len(rows)] = rows
            n_held += len(rows)
    return kept, held_out


def _pixel_stats(hist: np.ndarray, path: Path) -> tuple[float, float]:
    """Mean and std of the pixels counted in ``hist`` (256 counts) after scaling to [0, 1]."""
    values = np.arange(256, dtype=np.float64) / 255.0
    count = int(hist.sum())
    mean = float(np.dot(hist, values) / count)
    std = float(np.sqrt(np.dot(hist, (values - mean) ** 2) / count))
    if std == 0.0:
        raise DataError(
            f"{path}: all training-split pixels equal {round(mean * 255)}: cannot normalize"
        )
    return mean, std


def _locate(data_dir: Path, dataset: str, download_missing: bool) -> dict[str, Path]:
    """The four files of ``dataset`` under ``data_dir``, downloaded first when missing and
    ``download_missing``; DataError saying where it looked otherwise."""
    files = find_idx_files(data_dir, dataset)
    if files is None and download_missing:
        download(data_dir, dataset)
        files = find_idx_files(data_dir, dataset)
    if files is None:
        how = "download succeeded but" if download_missing else "download not requested and"
        raise DataNotFoundError(f"{not_found_text(data_dir, dataset)} ({how} the files are "
                                "missing)")
    return files


def _read_checked_labels(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """(train labels, test labels), after checking that the four files agree."""
    labels, dims = {}, {}
    for split in ("train", "test"):
        labels[split] = read_idx(files[f"{split}_labels"])
        dims[split] = idx_dims(files[f"{split}_images"])
        _check_pair(dims[split], labels[split], files[f"{split}_images"],
                    files[f"{split}_labels"])
        if not len(labels[split]):
            raise DataError(f"{files[f'{split}_images']}: holds no images; the {split} split "
                            "needs at least one")
    if dims["train"][1:] != dims["test"][1:]:
        raise DataError(
            f"image sizes differ: {files['train_images']} has {shape_text(dims['train'][1:])}, "
            f"{files['test_images']} has {shape_text(dims['test'][1:])}"
        )
    return labels["train"], labels["test"]


def _validation_rows(n_train: int, val_size: int | None, seed: int, path: Path) -> np.ndarray:
    """(n_train,) bool, True for the rows of the seeded validation split."""
    if val_size is None:
        val_size = default_val_size(n_train)
    if not 0 <= val_size < n_train:
        raise ValidationSizeError(
            f"--val-size {val_size} is out of range: must be >= 0 and < {n_train}, the number "
            f"of images in {path}"
        )
    is_val = np.zeros(n_train, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n_train)[:val_size]] = True
    return is_val


def _normalize(x: np.ndarray, mean: float, std: float) -> None:
    """Raw pixels 0..255 in ``x`` become ``(x / 255 - mean) / std``, in place, in x's dtype."""
    np.multiply(x, x.dtype.type(1.0 / (255.0 * std)), out=x)
    np.subtract(x, x.dtype.type(mean / std), out=x)


def load_splits(
    data_dir: Path,
    dataset: str = "mnist",
    *,
    val_size: int | None = None,
    seed: int = 0,
    dtype: npt.DTypeLike = np.float32,
    download_missing: bool = True,
) -> Splits:
    """Load ``dataset`` from ``data_dir`` as normalized train / val / test splits.

    Validation rows are ``permutation(N_train)[:val_size]`` of ``np.random.default_rng(seed)``
    (``val_size`` None: :func:`default_val_size`); the rest is the training split; both keep
    file order. Pixels become ``(x / 255 - mean) / std`` with mean and std of the training split
    only. x arrays are (N, H*W) in ``dtype``, y arrays (N,) int64.

    Raises:
        DataError: unknown dataset, invalid files, empty splits, or val_size out of range;
            DataNotFoundError when the files are missing and not downloaded.
        ValueError: ``dtype`` is not a floating-point dtype.
    """
    float_dtype = np.dtype(dtype)
    if float_dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype, got {float_dtype}")
    check_dataset(dataset)
    if dataset == SAMPLE:  # shipped with the package: never elsewhere, never downloaded
        data_dir, download_missing = SAMPLE_DIR, False
    files = _locate(Path(data_dir), dataset, download_missing)
    train_labels, test_labels = _read_checked_labels(files)
    is_val = _validation_rows(len(train_labels), val_size, seed, files["train_images"])
    hist = np.zeros(256, dtype=np.int64)
    train_x, val_x = _read_images(files["train_images"], is_val, float_dtype, hist)
    mean, std = _pixel_stats(hist, files["train_images"])
    test_x, _ = _read_images(files["test_images"], np.zeros(len(test_labels), bool), float_dtype)
    for x in (train_x, val_x, test_x):
        _normalize(x, mean, std)
    return Splits(train_x, train_labels[~is_val].astype(np.int64), val_x,
                  train_labels[is_val].astype(np.int64), test_x, test_labels.astype(np.int64),
                  mean, std, files)
