"""Run folders: each reserved atomically under ``--logdir``, and trained by one process at a
time."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from compare.errors import UserError


def reserve_run_dir(logdir: Path, name: str) -> Path:
    """Create ``logdir/name``, or ``name-2``, ``-3``... when taken, atomically: two runs started
    together never share a folder, and old runs are never mixed with new ones."""
    logdir.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while True:
        candidate = logdir / (name if suffix == 1 else f"{name}-{suffix}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            suffix += 1


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first: the folders a
    ``mkdir(parents=True)`` of it would make."""
    return [folder for folder in (path, *path.absolute().parents) if not folder.exists()]


def discard_run_dir(run_dir: Path, made: list[Path]) -> None:
    """Remove ``run_dir`` with its contents, and those of the folders ``made`` for it (see
    :func:`missing_folders`) that it leaves empty: a failed start leaves nothing behind."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this process while the block runs: a second process that trains or
    resumes the same run is refused (the lock goes with the process, however it ends)."""
    folder = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run_dir}: another process is training this run now; wait for it "
                            "to end") from None
        yield
    finally:
        os.close(folder)
