"""Run folders: each reserved atomically under ``--logdir``, and trained by one process at a
time."""

from __future__ import annotations

import fcntl
import os
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
