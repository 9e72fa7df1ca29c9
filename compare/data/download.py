"""Downloading a dataset's four gzipped IDX files from its mirrors, bounded in time.

A mirror that stays silent for :data:`SILENCE_SECONDS` (while connecting or sending) is given up
for the next one, and the whole attempt ends after :data:`DEADLINE_SECONDS` whatever happens,
name resolution included. Files are fetched into a private temporary folder and checked
against their MD5 sums; only when all four arrived are they moved into the dataset folder, so a
failed, timed-out or interrupted attempt leaves nothing behind. Offline, the attempt fails as
soon as the mirrors' names do not resolve: no torchvision import, no retry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

SILENCE_SECONDS = 5.0
"""A mirror that sends nothing for this long (connecting or downloading) is given up."""

DEADLINE_SECONDS = 120.0
"""The most a whole download attempt takes, all mirrors and files together."""

MIRRORS: dict[str, tuple[str, ...]] = {
    "MNIST": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "FashionMNIST": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
"""torchvision folder name -> the mirrors torchvision downloads it from, tried in order."""

MD5: dict[str, dict[str, str]] = {
    "MNIST": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    "FashionMNIST": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                     "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                     "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
}
"""torchvision folder name -> file -> the MD5 sum of the official file (torchvision's own)."""

CHUNK_BYTES = 1 << 16
MAX_BYTES = 64 << 20
"""More than any of the files is (Fashion-MNIST's training images: 26 MB gzipped)."""


class DownloadError(Exception):
    """No mirror delivered a file, or the attempt ran out of time; the message says why."""


def fetch(folder: str, raw: Path) -> None:
    """Download the four files of the dataset ``folder`` (``MNIST``, ``FashionMNIST``) into
    ``raw`` (created when they all arrived); DownloadError otherwise, with nothing written."""
    with tempfile.TemporaryDirectory(prefix="mlp-twins-download-",
                                     ignore_cleanup_errors=True) as staging:
        deadline = time.monotonic() + DEADLINE_SECONDS
        within(DEADLINE_SECONDS, lambda: fetch_all(folder, Path(staging), deadline))
        raw.mkdir(parents=True, exist_ok=True)
        for name in MD5[folder]:
            part = raw / f".{name}.part"
            try:
                shutil.copyfile(Path(staging) / name, part)
                os.replace(part, raw / name)
            finally:
                part.unlink(missing_ok=True)


def within(seconds: float, work: Callable[[], None]) -> None:
    """Run ``work`` in a daemon thread and wait at most ``seconds`` for it: its error is raised
    here, and DownloadError when it is still running then (it is left to die with the process;
    whatever it writes goes to the staging folder, removed by the caller)."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # raised again in the caller's thread
            outcome.append(error)

    thread = threading.Thread(target=run, name="mlp-twins download", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise DownloadError(f"not complete within {seconds:g} s")
    if outcome:
        raise outcome[0]


def fetch_all(folder: str, staging: Path, deadline: float) -> None:
    """Each file from the first mirror that delivers it intact; DownloadError naming the file and
    what each mirror did when none does."""
    for name, md5 in MD5[folder].items():
        failures = []
        for mirror in MIRRORS[folder]:
            try:
                fetch_one(mirror + name, staging / name, md5, deadline)
                break
            except (OSError, DownloadError) as error:
                failures.append(f"{mirror}{name}: {reason(error)}")
        else:
            raise DownloadError("; ".join(failures))


def fetch_one(url: str, path: Path, md5: str, deadline: float) -> None:
    """``url`` into ``path``, each socket operation bounded by :data:`SILENCE_SECONDS`, the
    whole before ``deadline`` (``time.monotonic()``) and within :data:`MAX_BYTES`."""
    request = urllib.request.Request(url, headers={"User-Agent": "mlp-twins"})
    digest, size = hashlib.md5(), 0
    with urllib.request.urlopen(request, timeout=SILENCE_SECONDS) as response, \
            path.open("wb") as file:
        while chunk := response.read(CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_BYTES or time.monotonic() > deadline:
                raise DownloadError(f"more than {MAX_BYTES >> 20} MiB" if size > MAX_BYTES
                                    else f"not complete within {DEADLINE_SECONDS:g} s")
            digest.update(chunk)
            file.write(chunk)
    if digest.hexdigest() != md5:
        raise DownloadError(f"MD5 {digest.hexdigest()}, expected {md5}")


def reason(error: BaseException) -> str:
    """Why a fetch failed, in a few words (a URLError's own reason, not its wrapper)."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, TimeoutError):
        return f"no answer for {SILENCE_SECONDS:g} s"
    return str(error) or type(error).__name__
