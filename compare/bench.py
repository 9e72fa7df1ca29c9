"""``compare bench``: seconds per training epoch against the matrix-product floor, in one run.

Each backend trains in its own worker process (spawned, so the scratch one never holds torch),
and the parent interleaves them: repeat 1 of every (batch size, backend), then repeat 2, ... so a
slow spell of the machine hits both alike. Per (backend, batch size) a row gives the median epoch,
the floor (the same matrix products alone, the same number of times, with the same threads), their
ratio, the data share (shuffle and batch gathering alone), the worker's peak RSS and the test
accuracy after the timed epochs, and the seconds of the backend's yardstick, its library's plainest
training loop (:mod:`compare.plain_loops`), on the same batches. The workers train on the whole
training file (no validation split).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from compare.arch import Architecture, parse_dtype
from compare.optimizers import OptimizerSpec
from compare.plain_loops import PLAIN_LOOPS
from compare.threads import blas_thread_policy
from compare.train import EpochOrders, TrainConfig, batch_bounds, build_backend

SETTLE_SECONDS = 0.3
"""Pause before each timed loop. OpenBLAS worker threads spin for about 2**28 cycles (~0.1 s)
after a product before they sleep: without the pause the scratch worker's spinning threads take
a core from the torch epoch that follows (measured: torch 13% slower at batch 128, 22% at 256)."""


@dataclass(frozen=True)
class BenchConfig:
    data_dir: str
    dataset: str
    arch: Architecture
    dtype: str
    lr: float
    seed: int
    device: str


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


def _sync(backend: object) -> None:
    if str(getattr(backend, "device", "cpu")).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class _Worker:
    """Lives in the worker process: one backend per batch size, all sharing the loaded data."""

    def __init__(self, name: str, config: BenchConfig) -> None:
        from compare.data import load_splits

        self.name, self.config = name, config
        self.splits = load_splits(Path(config.data_dir), config.dataset, val_size=0,
                                  seed=config.seed, dtype=parse_dtype(config.dtype))
        self.train_config = lambda batch_size: TrainConfig(
            config.arch, OptimizerSpec.create("sgd", config.lr), 1, batch_size, config.seed,
            config.dtype, config.device)
        self.build = build_backend
        self.orders = EpochOrders(len(self.splits.train_y), config.seed)
        self.backends: dict[tuple[str, int], object] = {}
        self.repeats: dict[int, int] = {}  # epochs timed so far, per batch size
        self.plain_loops: dict[int, object] = {}  # the yardstick per batch size

    def backend(self, batch_size: int, role: str = "product") -> object:
        """The backend timed at ``batch_size``; role "plain" is a second one, whose network and
        data the plain loop trains."""
        if (role, batch_size) not in self.backends:
            self.backends[role, batch_size] = self.build(
                self.name, self.train_config(batch_size), self.splits)
        return self.backends[role, batch_size]

    def epoch(self, batch_size: int) -> tuple[float, float, float, float]:
        """(epoch, floor, data, plain loop) seconds for one epoch at ``batch_size``; the plain loop
        is timed before the epoch on every other call and after it on the rest, so neither gains
        from going second."""
        batches = batch_bounds(len(self.splits.train_y), batch_size)
        with blas_thread_policy(batch_size):
            order = self.orders.next()
            plain_first = self.repeats.get(batch_size, 0) % 2 == 1
            plain = self._plain_loop(batch_size, batches, order) if plain_first else None
            epoch = self._product_epoch(batch_size, batches, order)
            if not plain_first:
                plain = self._plain_loop(batch_size, batches, order)
            backend = self.backend(batch_size)
            started = time.perf_counter()
            backend.start_epoch(order, len(batches))
            for start, stop in batches:
                backend.gather(start, stop)
            _sync(backend)
            data = time.perf_counter() - started
            floor = self._floor(backend, batches)
        self.repeats[batch_size] = self.repeats.get(batch_size, 0) + 1
        return epoch, floor, data, plain

    def _product_epoch(self, batch_size: int, batches: list[tuple[int, int]],
                       order: np.ndarray) -> float:
        """The product's training epoch: ``start_epoch``, ``train_step`` per batch, losses read."""
        backend = self.backend(batch_size)
        time.sleep(SETTLE_SECONDS)
        _sync(backend)
        started = time.perf_counter()
        backend.start_epoch(order, len(batches))
        for start, stop in batches:
            backend.train_step(start, stop)
        backend.step_losses()
        return time.perf_counter() - started

    def _plain_loop(self, batch_size: int, batches: list[tuple[int, int]],
                    order: np.ndarray) -> float:
        """The backend's yardstick (:mod:`compare.plain_loops`) on the same batches, on a second
        copy of the network."""
        plain = self.backend(batch_size, role="plain")  # its own optimizer stays unused
        if batch_size not in self.plain_loops:
            self.plain_loops[batch_size] = PLAIN_LOOPS[self.name](plain, self.config.lr)
        time.sleep(SETTLE_SECONDS)
        _sync(plain)
        started = time.perf_counter()
        self.plain_loops[batch_size].epoch(batches, order)
        _sync(plain)
        return time.perf_counter() - started

    def _floor(self, backend: object, batches: list[tuple[int, int]]) -> float:
        """The training step's matrix products alone: forward X·W per layer, dW = Xᵀ·dY per
        layer, dX = dY·Wᵀ for every layer but the first; on preallocated operands."""
        widths = self.config.arch.widths
        sizes = sorted({stop - start for start, stop in batches})
        if self.name == "scratch":
            dtype = parse_dtype(self.config.dtype)
            rng = np.random.default_rng(0)

            def new(*shape: int) -> np.ndarray:
                return rng.standard_normal(shape).astype(dtype)

            matmul = np.matmul
            sync = lambda: None  # noqa: E731
        else:
            import torch

            from compare.arch import torch_dtype

            device, tdtype = backend.device, torch_dtype(self.config.dtype)

            def new(*shape: int) -> object:
                return torch.randn(shape, dtype=tdtype, device=device)

            matmul = torch.matmul

            def sync() -> None:
                _sync(backend)

        operands = {}
        for size in sizes:
            layers = []
            for index, (fan_in, fan_out) in enumerate(pairwise(widths)):
                x, w, y, dy = new(size, fan_in), new(fan_in, fan_out), new(size, fan_out), \
                    new(size, fan_out)
                dw, dx = new(fan_in, fan_out), (new(size, fan_in) if index else None)
                layers.append((x, w, y, dy, dw, dx))
            operands[size] = layers
        sync()
        started = time.perf_counter()
        for start, stop in batches:
            for x, w, y, dy, dw, dx in operands[stop - start]:
                matmul(x, w, out=y)
                matmul(x.T, dy, out=dw)
                if dx is not None:
                    matmul(dy, w.T, out=dx)
        sync()
        return time.perf_counter() - started

    def accuracy(self, batch_size: int) -> float:
        return self.backend(batch_size).evaluate(self.splits.test_x, self.splits.test_y)[1]


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent that forked the worker, before the worker exec'd its own Python."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serve(name: str, config: BenchConfig, connection: mp.connection.Connection) -> None:
    try:
        worker = _Worker(name, config)
        connection.send(("ok", "torch" in sys.modules))
        while (request := connection.recv()) is not None:
            kind, batch_size = request
            result = worker.epoch(batch_size) if kind == "epoch" else worker.accuracy(batch_size)
            connection.send(("ok", result))
        connection.send(("ok", _peak_rss_mib()))
    except Exception as error:  # reported by the parent as one line, naming the backend
        connection.send(("error", f"{type(error).__name__}: {error}"))


class BenchError(Exception):
    """A worker failed: the message names the backend."""


def run_bench(config: BenchConfig, backends: list[str], batch_sizes: list[int], repeats: int,
              log: object = print) -> list[BenchRow]:
    context = mp.get_context("spawn")
    workers = {}
    for name in backends:
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(name, config, child), daemon=True)
        process.start()
        workers[name] = (parent, process)

    def ask(name: str, request: object = None, *, send: bool = True) -> object:
        connection = workers[name][0]
        if send:
            connection.send(request)
        status, value = connection.recv()
        if status == "error":
            raise BenchError(f"{name} worker: {value}")
        return value

    try:
        for name in backends:
            if ask(name, send=False) and name == "scratch":  # loaded and ready
                raise BenchError("scratch worker: torch was imported")
        timings: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
        for repeat in range(repeats):
            for batch_size in batch_sizes:
                for name in backends:
                    timing = ask(name, ("epoch", batch_size))
                    timings.setdefault((name, batch_size), []).append(timing)
                    log(f"repeat {repeat + 1}/{repeats} {name:>7} batch {batch_size:>4}: "
                        f"epoch {timing[0]:.3f} s, floor {timing[1]:.3f} s, data {timing[2]:.3f} s"
                        f", plain loop {timing[3]:.3f} s")
        accuracy = {(n, b): ask(n, ("accuracy", b)) for n in backends for b in batch_sizes}
        peaks = {name: ask(name, None) for name in backends}
    finally:
        for connection, process in workers.values():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
            connection.close()
    rows = []
    for (name, batch_size), runs in timings.items():
        epoch = statistics.median(t[0] for t in runs)
        floor = statistics.median(t[1] for t in runs)
        device = config.device if name == "torch" else "cpu"
        rows.append(BenchRow(name, device, batch_size, epoch, floor, epoch / floor,
                             statistics.median(t[2] for t in runs), peaks[name],
                             accuracy[(name, batch_size)], statistics.median(t[3] for t in runs),
                             # paired: each epoch against the plain loop timed beside it
                             statistics.median(t[0] / t[3] for t in runs)))
    return sorted(rows, key=lambda r: (r.batch_size, r.backend))


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
