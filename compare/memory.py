"""Will it fit? An estimate of the memory a network and its batches take, checked against what
the machine has available before any work starts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from compare.errors import UserError

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


@dataclass(frozen=True)
class Footprint:
    """What a command will hold: ``networks`` networks of layer ``widths``, each parameter with
    ``arrays_per_parameter`` arrays (value, gradient, optimizer state...) of ``itemsize`` bytes,
    and their activations for a batch of ``batch_size`` rows (or of the ``evaluation_rows`` that
    evaluation takes at a time, if more). A batch never holds more rows than the training set:
    give the smaller of the two."""

    widths: tuple[int, ...]
    itemsize: int
    networks: int
    arrays_per_parameter: int
    batch_size: int = 1
    evaluation_rows: int = 1

    def parameter_bytes(self) -> int:
        count = sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise(self.widths))
        return count * self.itemsize * self.arrays_per_parameter * self.networks

    def bytes_per_row(self) -> int:
        return sum(self.widths) * self.itemsize * ACTIVATION_ARRAYS * self.networks


def check_fits(footprint: Footprint, what: str, batch_flag: str = "--batch-size",
               batch_given: int | None = None) -> None:
    """Refuse up front, naming the flag to change (``--arch`` or ``batch_flag`` with the batch
    size given, ``batch_given``, which the footprint's may be capped from), when ``footprint``
    would not fit in the memory available; ``what`` says what needs it."""
    parameters, per_row = footprint.parameter_bytes(), footprint.bytes_per_row()
    needed = parameters + per_row * max(footprint.batch_size, footprint.evaluation_rows)
    available = available_bytes()
    if needed > available:
        spec = "-".join(map(str, footprint.widths))
        flag = (f"--arch {spec}" if parameters + per_row * footprint.evaluation_rows > available
                else f"{batch_flag} {footprint.batch_size if batch_given is None else batch_given}")
        raise UserError(f"{flag}: {what} would need about {_size(needed)} of memory, and this "
                        f"machine has {_size(available)} available")


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
