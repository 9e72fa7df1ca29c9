"""Will it fit? An estimate of the memory a network and its batches take, checked against what
the machine has available before any work starts."""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

from compare.errors import UserError
from compare.harness.arch import Architecture

ACTIVATION_ARRAYS = 8
"""Arrays of (batch, width) a step holds per layer width: outputs, gradients, masks, temporaries,
in each twin's own way; generous on purpose."""


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo, or the free physical pages where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def parameter_count(arch: Architecture) -> int:
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise(arch.widths))


def check_fits(arch: Architecture, *, itemsize: int, batch_size: int, networks: int,
               arrays_per_parameter: int, what: str, evaluation_rows: int = 1,
               batch_flag: str = "--batch-size") -> None:
    """Refuse up front, naming the flag to change, when ``networks`` networks of ``arch`` (each
    parameter with ``arrays_per_parameter`` arrays: value, gradient, optimizer state...) and
    their activations for a batch of ``batch_size`` rows (or of the ``evaluation_rows`` that
    evaluation takes at a time, if more) would not fit in the memory available. A batch never
    holds more rows than the training set: pass the smaller of the two.
    """
    parameters = parameter_count(arch) * itemsize * arrays_per_parameter * networks
    per_row = sum(arch.widths) * itemsize * ACTIVATION_ARRAYS * networks
    needed = parameters + per_row * max(batch_size, evaluation_rows)
    available = available_bytes()
    if needed > available:
        flag = (f"--arch {arch.spec}" if parameters + per_row * evaluation_rows > available else
                f"{batch_flag} {batch_size}")
        raise UserError(f"{flag}: {what} would need about {_size(needed)} of memory, and this "
                        f"machine has {_size(available)} available")


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
