"""Standard output and error that never stop a command: text the terminal's encoding cannot
show is written with backslash escapes, and once the reader is gone (``train ... | head -1``)
the rest of the output is dropped while the work goes on to the end."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO


class SafeStream:
    """A text stream wrapper whose writes and flushes never raise for encoding or a closed pipe."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            try:
                return self._stream.write(text)
            except UnicodeEncodeError:
                encoding = self._stream.encoding or "utf-8"
                return self._stream.write(
                    text.encode(encoding, "backslashreplace").decode(encoding))
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        """Point the stream's file descriptor at /dev/null: what is buffered and what follows
        goes nowhere, and no later flush (at exit either) fails again."""
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_streams() -> Iterator[None]:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`SafeStream` while the block runs (one
    that was closed before the program started writes nowhere)."""
    saved = sys.stdout, sys.stderr
    with open(os.devnull, "w") as nowhere:  # a stream closed at start (``>&-``) is None
        sys.stdout, sys.stderr = (SafeStream(stream or nowhere)  # type: ignore[assignment]
                                  for stream in saved)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved
