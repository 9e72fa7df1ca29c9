"""MNIST / Fashion-MNIST loading from IDX files, with a seeded validation split.

IDX format: a big-endian magic number (two zero bytes, a type byte, a dimension-count byte),
one big-endian uint32 per dimension, then the payload in C order. Only the uint8 type (0x08)
with 1 dimension (labels) or 3 dimensions (images) is accepted. Files ending in ``.gz`` are
read through gzip.

Image files are streamed block by block straight into the float output arrays, so no full
uint8 (or float64) copy of an image file is ever held: peak memory is about the size of the
returned arrays.

Nothing here imports torch or torchvision at import time; :func:`download` imports torchvision
lazily, only when files are missing and a download is wanted.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

DATASETS: dict[str, str] = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
"""CLI dataset name -> torchvision class and folder name."""

FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""Role -> IDX file name (without the optional ``.gz``)."""

_MAGIC_BYTES = 4
_UINT8_TYPE = 0x08
_IMAGE_NDIM = 3
_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK_BYTES = 1 << 18  # payload bytes per read block (bounds temporary memory)
_NUM_CLASSES = 10


class DataError(Exception):
    """Bad or missing data; the message names the file(s) and what is wrong.

    The command-line interface maps it to exit status 2.
    """


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


def _one_line(exc: BaseException) -> str:
    """First line of an exception's text, or its type name when the text is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _shape_text(dims: tuple[int, ...]) -> str:
    """Return dims as "AxBxC"."""
    return "x".join(map(str, dims))


@contextmanager
def _open_idx(path: Path) -> Iterator[tuple[tuple[int, ...], BinaryIO]]:
    """Open an IDX file, check its header, and yield (dims, stream positioned at the payload).

    OS and gzip errors raised while the stream is used inside the ``with`` block become
    DataError naming ``path``.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            yield _read_header(path, stream), stream
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip stream ({_one_line(exc)})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or _one_line(exc)})") from exc


def _read_header(path: Path, stream: BinaryIO) -> tuple[int, ...]:
    """Read and check the magic number and dimensions; return the dimensions (1 or 3 ints)."""
    magic = stream.read(_MAGIC_BYTES)
    if len(magic) < _MAGIC_BYTES:
        raise DataError(f"{path}: truncated header: {len(magic)} bytes, the magic number needs 4")
    if magic[:2] != b"\x00\x00":
        hint = ""
        if magic[:2] == _GZIP_MAGIC:
            hint = " (the file looks gzip-compressed; its name should end in .gz)"
        raise DataError(
            f"{path}: bad magic number 0x{magic.hex()}: the first two bytes must be zero{hint}"
        )
    if magic[2] != _UINT8_TYPE:
        raise DataError(
            f"{path}: unsupported data type byte 0x{magic[2]:02x} in magic number 0x{magic.hex()}"
            f": only 0x08 (uint8) is supported"
        )
    ndim = magic[3]
    if ndim not in (1, _IMAGE_NDIM):
        raise DataError(
            f"{path}: magic number 0x{magic.hex()} says {ndim} dimensions: expected 1 (labels) "
            f"or 3 (images)"
        )
    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DataError(
            f"{path}: truncated header: {_MAGIC_BYTES + len(dims_raw)} bytes, {ndim} dimensions "
            f"need {_MAGIC_BYTES + 4 * ndim}"
        )
    return tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))


def _fill(stream: BinaryIO, view: memoryview) -> int:
    """Read into ``view`` until it is full or the stream ends; return the bytes read."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _iter_rows(path: Path, stream: BinaryIO, dims: tuple[int, ...]) -> Iterator[np.ndarray]:
    """Yield the payload as consecutive uint8 blocks of whole rows, shape (k, *dims[1:]).

    Each block is a view of one reused buffer: copy it before asking for the next. After the
    last row, checks that the stream ends there (DataError for a short or long payload).
    """
    row_bytes = math.prod(dims[1:])
    expected = dims[0] * row_bytes
    described = f"{_shape_text(dims)} = {expected}"
    rows_per_block = max(1, _BLOCK_BYTES // max(row_bytes, 1))
    buffer = np.empty(min(dims[0], rows_per_block) * row_bytes, dtype=np.uint8)
    done = 0
    while done < dims[0]:
        rows = min(rows_per_block, dims[0] - done)
        want = rows * row_bytes
        got = _fill(stream, memoryview(buffer)[:want])
        if got < want:
            raise DataError(
                f"{path}: payload is {done * row_bytes + got} bytes, header says {described}"
            )
        yield buffer[:want].reshape(rows, *dims[1:])
        done += rows
    extra = len(stream.read(_BLOCK_BYTES))
    if extra:
        while chunk := stream.read(_BLOCK_BYTES):
            extra += len(chunk)
        raise DataError(
            f"{path}: payload is {expected + extra} bytes, header says {described} "
            f"({extra} trailing bytes)"
        )


def _empty(shape: tuple[int, ...], dtype: npt.DTypeLike, path: Path) -> np.ndarray:
    """np.empty(shape, dtype), with a DataError naming ``path`` when it cannot be allocated."""
    try:
        return np.empty(shape, dtype=dtype)
    except (MemoryError, ValueError) as exc:
        raise DataError(
            f"{path}: header too large: cannot allocate a {_shape_text(shape)} array of "
            f"{np.dtype(dtype)} for it"
        ) from exc


def read_idx(path: Path) -> np.ndarray:
    """Read one uint8 IDX file (gzipped when the name ends in ``.gz``).

    Args:
        path: the file.

    Returns:
        uint8 array of the shape given in the header: (N,) for labels, (N, H, W) for images.

    Raises:
        DataError: unreadable file, bad magic number, short header, payload shorter or longer
            than the header says, or a corrupt gzip stream; the message starts with the path.
    """
    path = Path(path)
    with _open_idx(path) as (dims, stream):
        data = _empty(dims, np.uint8, path)
        done = 0
        for block in _iter_rows(path, stream, dims):
            data[done : done + len(block)] = block
            done += len(block)
        return data


def _check_dataset(dataset: str) -> str:
    """Return the torchvision folder name for ``dataset``; DataError naming --dataset otherwise."""
    if dataset not in DATASETS:
        choices = ", ".join(DATASETS)
        raise DataError(f"--dataset {dataset!r} is not known: choose one of {choices}")
    return DATASETS[dataset]


def _candidate_dirs(data_dir: Path, dataset: str) -> list[Path]:
    """Return the folders searched for IDX files, in order: DIR/<torchvision folder>/raw, DIR."""
    return [data_dir / _check_dataset(dataset) / "raw", data_dir]


def find_idx_files(data_dir: Path, dataset: str) -> dict[str, Path] | None:
    """Locate the four IDX files of ``dataset`` under ``data_dir``.

    Looks in ``data_dir/<torchvision folder>/raw/`` and then in ``data_dir/``; in each folder a
    file is accepted as NAME or NAME.gz (the uncompressed one wins when both exist).

    Returns:
        role -> path for all four :data:`FILES` from the first folder that holds all four,
        or None when no folder does.

    Raises:
        DataError: ``dataset`` is not one of :data:`DATASETS`.
    """
    for folder in _candidate_dirs(Path(data_dir), dataset):
        found: dict[str, Path] = {}
        for role, name in FILES.items():
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[role] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def _not_found_text(data_dir: Path, dataset: str) -> str:
    """Sentence saying which files were looked for where."""
    folders = " and ".join(f"{folder}/" for folder in _candidate_dirs(data_dir, dataset))
    names = ", ".join(FILES.values())
    return (
        f"{dataset} IDX files not found: looked for {names} (each also accepted with .gz) "
        f"in {folders}"
    )


def download(data_dir: Path, dataset: str) -> None:
    """Download ``dataset`` into ``data_dir/<torchvision folder>/raw/`` with torchvision.

    torchvision is imported here, not at module import time.

    Raises:
        DataError: any failure (torchvision missing, no network, ...); the message says which
            files were looked for where, why the download failed, and how to supply the files
            offline.
    """
    data_dir = Path(data_dir)
    folder = _check_dataset(dataset)
    try:
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, folder)
        for train in (True, False):
            dataset_class(root=str(data_dir), train=train, download=True)
    except Exception as exc:
        offline = (
            f"To provide the files offline, copy the four IDX files into "
            f"{data_dir / folder / 'raw'}/ or {data_dir}/"
        )
        if dataset == "fashion-mnist":
            offline += (
                ", or run `apt-get install dataset-fashion-mnist` and pass "
                "`--data-dir /usr/share/datasets/fashion-mnist`"
            )
        raise DataError(
            f"{_not_found_text(data_dir, dataset)}; download failed: "
            f"{type(exc).__name__}: {_one_line(exc)}. {offline}."
        ) from exc


def default_val_size(n_train_file: int) -> int:
    """Return the validation size for a training file of ``n_train_file`` images.

    min(5000, round(0.1 * n_train_file)): 5000, or 10% when the file holds fewer than 50,000.
    """
    return min(5000, round(0.1 * n_train_file))


def _idx_dims(path: Path) -> tuple[int, ...]:
    """Return the dimensions in the header of the IDX file at ``path`` (header checked)."""
    with _open_idx(path) as (dims, _):
        return dims


def _check_pair(
    image_dims: tuple[int, ...], labels: np.ndarray, image_path: Path, label_path: Path
) -> None:
    """Validate one image file header against its labels: shapes, counts, labels in 0..9."""
    if len(image_dims) != _IMAGE_NDIM:
        raise DataError(f"{image_path}: expected 3 dimensions (N, H, W), got {len(image_dims)}")
    if labels.ndim != 1:
        raise DataError(f"{label_path}: expected 1 dimension (N,), got {labels.ndim}")
    if math.prod(image_dims[1:]) == 0:
        raise DataError(f"{image_path}: images have zero size {_shape_text(image_dims[1:])}")
    if image_dims[0] != len(labels):
        raise DataError(
            f"{image_path} holds {image_dims[0]} images but {label_path} holds {len(labels)} labels"
        )
    bad = np.flatnonzero(labels >= _NUM_CLASSES)
    if bad.size:
        first = int(bad[0])
        raise DataError(
            f"{label_path}: label at index {first} is {int(labels[first])}, must be in "
            f"0..{_NUM_CLASSES - 1}"
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
    with _open_idx(path) as (dims, stream):
        pixels = math.prod(dims[1:])
        n_val = int(np.count_nonzero(is_val))
        kept = _empty((len(is_val) - n_val, pixels), dtype, path)
        held_out = _empty((n_val, pixels), dtype, path)
        start = n_kept = n_held = 0
        for block in _iter_rows(path, stream, dims):
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


def load_splits(
    data_dir: Path,
    dataset: str = "mnist",
    *,
    val_size: int | None = None,
    seed: int = 0,
    dtype: npt.DTypeLike = np.float32,
    download_missing: bool = True,
) -> Splits:
    """Load ``dataset`` from ``data_dir`` and return normalized train / val / test splits.

    The files are found with :func:`find_idx_files` (downloaded first when missing and
    ``download_missing``). Validation rows are ``permutation(N_train)[:val_size]`` of
    ``np.random.default_rng(seed)``; the rest is the training split; both keep file order.
    Pixels become ``(x / 255 - mean) / std`` with mean and std of the training split only.

    Args:
        data_dir: dataset root (torchvision layout DIR/<folder>/raw/ or the files in DIR/).
        dataset: a key of :data:`DATASETS`.
        val_size: validation rows taken from the training file; None -> :func:`default_val_size`.
        seed: seed of the validation split.
        dtype: float dtype of the image arrays (float32 or float64).
        download_missing: try :func:`download` when the files are not found.

    Returns:
        :class:`Splits` with x arrays of shape (N, H*W) in ``dtype`` and y arrays (N,) int64.

    Raises:
        DataError: unknown dataset, missing or invalid files, or val_size out of range.
        ValueError: ``dtype`` is not a floating-point dtype.
    """
    data_dir = Path(data_dir)
    float_dtype = np.dtype(dtype)
    if float_dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype, got {float_dtype}")
    _check_dataset(dataset)
    files = find_idx_files(data_dir, dataset)
    if files is None and download_missing:
        download(data_dir, dataset)
        files = find_idx_files(data_dir, dataset)
    if files is None:
        how = "download succeeded but" if download_missing else "download not requested and"
        raise DataError(f"{_not_found_text(data_dir, dataset)} ({how} the files are missing)")

    train_labels = read_idx(files["train_labels"])
    test_labels = read_idx(files["test_labels"])
    train_dims = _idx_dims(files["train_images"])
    test_dims = _idx_dims(files["test_images"])
    _check_pair(train_dims, train_labels, files["train_images"], files["train_labels"])
    _check_pair(test_dims, test_labels, files["test_images"], files["test_labels"])
    if train_dims[1:] != test_dims[1:]:
        raise DataError(
            f"image sizes differ: {files['train_images']} has {_shape_text(train_dims[1:])}, "
            f"{files['test_images']} has {_shape_text(test_dims[1:])}"
        )

    n_train = train_dims[0]
    if val_size is None:
        val_size = default_val_size(n_train)
    if not 0 <= val_size < n_train:
        raise DataError(
            f"--val-size {val_size} is out of range: must be >= 0 and < {n_train}, the number "
            f"of images in {files['train_images']}"
        )
    is_val = np.zeros(n_train, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n_train)[:val_size]] = True

    hist = np.zeros(256, dtype=np.int64)
    train_x, val_x = _read_images(files["train_images"], is_val, float_dtype, hist)
    mean, std = _pixel_stats(hist, files["train_images"])
    test_x, _ = _read_images(files["test_images"], np.zeros(test_dims[0], bool), float_dtype)
    scale, shift = float_dtype.type(1.0 / (255.0 * std)), float_dtype.type(mean / std)
    for x in (train_x, val_x, test_x):
        np.multiply(x, scale, out=x)
        np.subtract(x, shift, out=x)

    return Splits(
        train_x=train_x,
        train_y=train_labels[~is_val].astype(np.int64),
        val_x=val_x,
        val_y=train_labels[is_val].astype(np.int64),
        test_x=test_x,
        test_y=test_labels.astype(np.int64),
        mean=mean,
        std=std,
        source=files,
    )
