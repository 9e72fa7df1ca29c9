"""Reading and checking IDX files, the format of MNIST and Fashion-MNIST.

IDX format: a big-endian magic number (two zero bytes, a type byte, a dimension-count byte),
one big-endian uint32 per dimension, then the payload in C order. Only the uint8 type (0x08)
with 1 dimension (labels) or 3 dimensions (images) is accepted. Files ending in ``.gz`` are
read through gzip. Every error names the file and says what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from compare.errors import UserError

IMAGE_NDIM = 3
_MAGIC_BYTES = 4
_UINT8_TYPE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK_BYTES = 1 << 18  # payload bytes per read block (bounds temporary memory)


class DataError(UserError):
    """Bad or missing data; the message names the file(s) and what is wrong."""


def one_line(exc: BaseException) -> str:
    """First line of an exception's text, or its type name when the text is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shape_text(dims: tuple[int, ...]) -> str:
    """Return dims as "AxBxC"."""
    return "x".join(map(str, dims))


@contextmanager
def open_idx(path: Path) -> Iterator[tuple[tuple[int, ...], BinaryIO]]:
    """Open an IDX file, check its header, and yield (dims, stream positioned at the payload).

    OS and gzip errors raised while the stream is used inside the ``with`` block become
    DataError naming ``path``.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            yield _read_header(path, stream), stream
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip stream ({one_line(exc)})") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder, not an IDX file") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or one_line(exc)})") from exc


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
    if ndim not in (1, IMAGE_NDIM):
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


def _check_no_trailing_bytes(path: Path, stream: BinaryIO, expected: int, described: str
                             ) -> None:
    """DataError when the stream holds more than the ``expected`` payload bytes."""
    extra = 0
    while chunk := stream.read(_BLOCK_BYTES):
        extra += len(chunk)
    if extra:
        raise DataError(f"{path}: payload is {expected + extra} bytes, header says {described} "
                        f"({extra} trailing bytes)")


def iter_rows(path: Path, stream: BinaryIO, dims: tuple[int, ...]) -> Iterator[np.ndarray]:
    """Yield the payload as consecutive uint8 blocks of whole rows, shape (k, *dims[1:]).

    Each block is a view of one reused buffer: copy it before asking for the next. After the
    last row, checks that the stream ends there (DataError for a short or long payload).
    """
    row_bytes = math.prod(dims[1:])
    expected = dims[0] * row_bytes
    described = f"{shape_text(dims)} = {expected}"
    rows_per_block = max(1, _BLOCK_BYTES // max(row_bytes, 1))
    buffer = allocate((min(dims[0], rows_per_block) * row_bytes,), np.uint8, path)
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
    _check_no_trailing_bytes(path, stream, expected, described)


def allocate(shape: tuple[int, ...], dtype: npt.DTypeLike, path: Path) -> np.ndarray:
    """np.empty(shape, dtype), with a DataError naming ``path`` when it cannot be allocated."""
    try:
        return np.empty(shape, dtype=dtype)
    except (MemoryError, ValueError) as exc:
        raise DataError(
            f"{path}: header too large: cannot allocate a {shape_text(shape)} array of "
            f"{np.dtype(dtype)} for it"
        ) from exc


def idx_dims(path: Path) -> tuple[int, ...]:
    """Return the dimensions in the header of the IDX file at ``path`` (header checked)."""
    with open_idx(path) as (dims, _):
        return dims


def read_idx(path: Path) -> np.ndarray:
    """Read one uint8 IDX file (gzipped when the name ends in ``.gz``).

    Returns:
        uint8 array of the shape given in the header: (N,) for labels, (N, H, W) for images.

    Raises:
        DataError: unreadable file, bad magic number, short header, payload shorter or longer
            than the header says, or a corrupt gzip stream; the message starts with the path.
    """
    path = Path(path)
    with open_idx(path) as (dims, stream):
        data = allocate(dims, np.uint8, path)
        done = 0
        for block in iter_rows(path, stream, dims):
            data[done : done + len(block)] = block
            done += len(block)
        return data
