"""``compare bench``, the parent's side: it starts a worker per backend
(:mod:`compare.bench.worker`), asks each for its timings, and makes the table.

Each backend trains in its own worker process (spawned, so the scratch one never holds torch),
and the parent interleaves them: repeat 1 of every (batch size, backend, network), then repeat 2,
... so a slow spell of the machine hits all alike. Per (backend, batch size, network) a row gives
the median epoch, the floor (the same matrix products alone, the same number of times, with the
same threads), their ratio, the data share (shuffle and batch gathering alone), the worker's peak
RSS and the test accuracy after the timed epochs, and the seconds of the backend's yardstick, its
library's plainest training loop (:mod:`compare.bench.plain_loops`), on the same batches. The
networks are the plain one (no normalization, no dropout) and each with the layers asked for; a
row's ``ratio_to_plain_network`` is its epoch over the plain network's, paired by repeat. The
workers train on the whole training file (no validation split).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from compare.bench.worker import BenchConfig, serve
from compare.errors import CheckError
from compare.harness.arch import Architecture


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
    norm: str = "none"
    dropout: float = 0.0
    ratio_to_plain_network: float = 1.0
    """This network's epoch over the plain network's (no norm, no dropout), the median over the
    repeats of the two timed in the same repeat."""

    @property
    def network(self) -> str:
        return network_label(self.norm, self.dropout)


Timing = tuple[float, float, float, float]  # epoch, floor, data, plain loop seconds
Key = tuple[str, int, int]  # backend, batch size, network (its index in BenchConfig.networks)
POLL_SECONDS = 0.5


class BenchError(CheckError):
    """A worker failed: the message names the backend."""


class Workers:
    """One spawned worker process per backend, asked one request at a time; a worker that dies
    or does not answer within ``timeout`` seconds ends the bench with a BenchError."""

    def __init__(self, config: BenchConfig, backends: list[str], timeout: float) -> None:
        context = mp.get_context("spawn")
        self.connections, self.processes, self.timeout = {}, {}, timeout
        several = len(config.networks) > 1
        self.labels = [f", {network_label(n.norm, n.dropout)}" if several else ""
                       for n in config.networks]
        for name in backends:
            parent, child = context.Pipe()
            self.processes[name] = context.Process(target=serve, args=(name, config, child),
                                                   daemon=True)
            self.processes[name].start()
            self.connections[name] = parent

    def ask(self, name: str, request: tuple | None = None, *, send: bool = True) -> object:
        """Send ``request`` (unless not ``send``) and return the worker's answer."""
        what = (f"{name} worker ({request[0]}, batch {request[1]}{self.labels[request[2]]})"
                if request else f"{name} worker")
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
    """Rows ordered by batch size, backend, network (the plain network first)."""
    workers = Workers(config, backends, timeout)
    try:
        for name in backends:
            if workers.ask(name, send=False) and name == "scratch":  # loaded and ready
                raise BenchError("scratch worker: torch was imported")
        timings = time_epochs(workers, backends, batch_sizes, repeats, log)
        accuracy = {key: workers.ask(key[0], ("accuracy", *key[1:])) for key in timings}
        peaks = {name: workers.ask(name, None) for name in backends}
    finally:
        workers.close()
    return [network_row(bench_row(name, config.device if name == "torch" else "cpu", batch_size,
                                  runs, peaks[name], accuracy[name, batch_size, network]),
                        config.networks[network], runs, timings[name, batch_size, 0])
            for (name, batch_size, network), runs in sorted(
                timings.items(), key=lambda item: (item[0][1], item[0][0], item[0][2]))]


def time_epochs(workers: Workers, backends: list[str], batch_sizes: list[int], repeats: int,
                log: Callable[[str], None]) -> dict[Key, list[Timing]]:
    """Each worker's timings of every (batch size, network), ``repeats`` times, interleaved."""
    timings: dict[Key, list[Timing]] = {}
    for repeat in range(repeats):
        for batch_size in batch_sizes:
            for name in backends:
                for network, label in enumerate(workers.labels):
                    timing = workers.ask(name, ("epoch", batch_size, network))
                    timings.setdefault((name, batch_size, network), []).append(timing)
                    log(f"repeat {repeat + 1}/{repeats} {name:>7} batch {batch_size:>4}{label}: "
                        f"epoch {timing[0]:.3f} s, floor {timing[1]:.3f} s, data "
                        f"{timing[2]:.3f} s, plain loop {timing[3]:.3f} s")
    return timings


def bench_row(name: str, device: str, batch_size: int, runs: list[Timing], peak: float,
              accuracy: float) -> BenchRow:
    """Medians over the repeats; ``ratio_to_plain`` is paired, the median of each repeat's epoch
    over the plain loop timed beside it."""
    epoch, floor, data, plain = (statistics.median(t[i] for t in runs) for i in range(4))
    return BenchRow(name, device, batch_size, epoch, floor, epoch / floor, data, peak, accuracy,
                    plain, statistics.median(t[0] / t[3] for t in runs))


def network_row(row: BenchRow, network: Architecture, runs: list[Timing],
                plain_network_runs: list[Timing]) -> BenchRow:
    """``row`` of ``network``: its layers and its epoch over the plain network's, paired by
    repeat (the median of the ratios)."""
    ratio = statistics.median(run[0] / plain[0]
                              for run, plain in zip(runs, plain_network_runs, strict=True))
    return replace(row, norm=network.norm, dropout=network.dropout,
                   ratio_to_plain_network=ratio)


def network_label(norm: str, dropout: float) -> str:
    """How the table names a network by its layers: ``plain``, ``norm batch, dropout 0.2``."""
    layers = ([f"norm {norm}"] if norm != "none" else []) + (
        [f"dropout {dropout:g}"] if dropout else [])
    return ", ".join(layers) or "plain"


def table(rows: list[BenchRow]) -> str:
    """One line per row; with several networks, each row's network and its epoch over the plain
    network's (``vs plain net``) too."""
    several = len({row.network for row in rows}) > 1
    lines = [f"{'backend':<8} {'device':<7} {'batch':>5} "
             + (f"{'network':<23} " if several else "")
             + f"{'epoch s':>8} {'floor s':>8} {'ratio':>6} {'data s':>7} {'data %':>6} "
             f"{'peak MiB':>8} {'test acc':>8} {'plain s':>8} {'vs plain':>8}"
             + (f" {'vs plain net':>12}" if several else "")]
    for r in rows:
        lines.append(f"{r.backend:<8} {r.device:<7} {r.batch_size:>5} "
                     + (f"{r.network:<23} " if several else "")
                     + f"{r.epoch_seconds:>8.3f} {r.floor_seconds:>8.3f} {r.ratio_to_floor:>6.2f} "
                     f"{r.data_seconds:>7.3f} {100 * r.data_seconds / r.epoch_seconds:>5.1f}% "
                     f"{r.peak_rss_mib:>8.0f} {r.test_accuracy:>8.4f} "
                     f"{r.plain_loop_seconds:>8.3f} {r.ratio_to_plain:>8.3f}"
                     + (f" {r.ratio_to_plain_network:>12.3f}" if several else ""))
    return "\n".join(lines)


def rows_json(rows: list[BenchRow]) -> dict:
    return {"rows": [asdict(r) for r in rows]}
