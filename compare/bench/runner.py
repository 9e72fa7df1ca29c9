"""``compare bench``, the parent's side: it starts a worker per backend
(:mod:`compare.bench.worker`), asks each for its timings, and makes the table.

Each backend trains in its own worker process (spawned, so the scratch one never holds torch),
and the parent interleaves them: repeat 1 of every (batch size, backend), then repeat 2, ... so a
slow spell of the machine hits both alike. Per (backend, batch size) a row gives the median epoch,
the floor (the same matrix products alone, the same number of times, with the same threads), their
ratio, the data share (shuffle and batch gathering alone), the worker's peak RSS and the test
accuracy after the timed epochs, and the seconds of the backend's yardstick, its library's
plainest training loop (:mod:`compare.bench.plain_loops`), on the same batches. The workers train
on the whole training file (no validation split).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass

from compare.bench.worker import BenchConfig, serve
from compare.errors import CheckError


@dataclass
class BenchRow:
    backend: str
    device: str
    batch_size: int
    epoch_seconds: float
    floor_seconds: float
    ratio_to_floor: float
    data_seconds: float
    peak_rss_mib: float
    test_accuracy: float
    plain_loop_seconds: float
    ratio_to_plain: float


Timing = tuple[float, float, float, float]  # epoch, floor, data, plain loop seconds
POLL_SECONDS = 0.5


class BenchError(CheckError):
    """A worker failed: the message names the backend."""


class Workers:
    """One spawned worker process per backend, asked one request at a time; a worker that dies
    or does not answer within ``timeout`` seconds ends the bench with a BenchError."""

    def __init__(self, config: BenchConfig, backends: list[str], timeout: float) -> None:
        context = mp.get_context("spawn")
        self.connections, self.processes, self.timeout = {}, {}, timeout
        for name in backends:
            parent, child = context.Pipe()
            self.processes[name] = context.Process(target=serve, args=(name, config, child),
                                                   daemon=True)
            self.processes[name].start()
            self.connections[name] = parent

    def ask(self, name: str, request: tuple | None = None, *, send: bool = True) -> object:
        """Send ``request`` (unless not ``send``) and return the worker's answer."""
        what = f"{name} worker ({request[0]}, batch {request[1]})" if request else f"{name} worker"
        connection, process = self.connections[name], self.processes[name]
        try:
            if send:
                connection.send(request)
            waited = 0.0
            while not connection.poll(POLL_SECONDS):
                waited += POLL_SECONDS
                if not process.is_alive():
                    raise BenchError(f"{what}: the process died (exit code {process.exitcode})")
                if waited >= self.timeout:
                    raise BenchError(f"{what}: no answer within {self.timeout:g} s")
            status, value = connection.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise BenchError(f"{what}: the process died (exit code {process.exitcode})") from None
        if status == "error":
            raise BenchError(f"{what}: {value}")
        return value

    def close(self) -> None:
        """Wait briefly for workers that were told to finish; end the others."""
        for name, process in self.processes.items():
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()
            self.connections[name].close()


def run_bench(config: BenchConfig, backends: list[str], batch_sizes: list[int], repeats: int,
              log: Callable[[str], None] = print, timeout: float = 600.0) -> list[BenchRow]:
    workers = Workers(config, backends, timeout)
    try:
        for name in backends:
            if workers.ask(name, send=False) and name == "scratch":  # loaded and ready
                raise BenchError("scratch worker: torch was imported")
        timings: dict[tuple[str, int], list[Timing]] = {}
        for repeat in range(repeats):
            for batch_size in batch_sizes:
                for name in backends:
                    timing = workers.ask(name, ("epoch", batch_size))
                    timings.setdefault((name, batch_size), []).append(timing)
                    log(f"repeat {repeat + 1}/{repeats} {name:>7} batch {batch_size:>4}: "
                        f"epoch {timing[0]:.3f} s, floor {timing[1]:.3f} s, data {timing[2]:.3f} s"
                        f", plain loop {timing[3]:.3f} s")
        accuracy = {(n, b): workers.ask(n, ("accuracy", b)) for n in backends for b in batch_sizes}
        peaks = {name: workers.ask(name, None) for name in backends}
    finally:
        workers.close()
    rows = [bench_row(name, config.device if name == "torch" else "cpu", batch_size, runs,
                      peaks[name], accuracy[name, batch_size])
            for (name, batch_size), runs in timings.items()]
    return sorted(rows, key=lambda r: (r.batch_size, r.backend))


def bench_row(name: str, device: str, batch_size: int, runs: list[Timing], peak: float,
              accuracy: float) -> BenchRow:
    """Medians over the repeats; ``ratio_to_plain`` is paired, the median of each repeat's epoch
    over the plain loop timed beside it."""
    epoch, floor, data, plain = (statistics.median(t[i] for t in runs) for i in range(4))
    return BenchRow(name, device, batch_size, epoch, floor, epoch / floor, data, peak, accuracy,
                    plain, statistics.median(t[0] / t[3] for t in runs))


def table(rows: list[BenchRow]) -> str:
    lines = [f"{'backend':<8} {'device':<7} {'batch':>5} {'epoch s':>8} {'floor s':>8} "
             f"{'ratio':>6} {'data s':>7} {'data %':>6} {'peak MiB':>8} {'test acc':>8} "
             f"{'plain s':>8} {'vs plain':>8}"]
    for r in rows:
        lines.append(f"{r.backend:<8} {r.device:<7} {r.batch_size:>5} {r.epoch_seconds:>8.3f} "
                     f"{r.floor_seconds:>8.3f} {r.ratio_to_floor:>6.2f} {r.data_seconds:>7.3f} "
                     f"{100 * r.data_seconds / r.epoch_seconds:>5.1f}% {r.peak_rss_mib:>8.0f} "
                     f"{r.test_accuracy:>8.4f} {r.plain_loop_seconds:>8.3f} "
                     f"{r.ratio_to_plain:>8.3f}")
    return "\n".join(lines)


def rows_json(rows: list[BenchRow]) -> dict:
    return {"rows": [asdict(r) for r in rows]}
