"""The bench's worker process: one backend trains on the whole training file, and times its epoch,
the floor, the data gathering and its yardstick on request.

Runs in a spawned process of its own, so the scratch worker never holds torch.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from compare.bench.plain_loops import PLAIN_LOOPS
from compare.harness.arch import Architecture, parse_dtype
from compare.training.backend import Backend, Loader
from compare.training.build import build_backend
from compare.training.config import EpochOrders, TrainConfig, batch_bounds
from compare.training.history import History
from compare.training.loop import StepLoop
from compare.training.optimizers import OptimizerSpec
from compare.training.threads import blas_thread_policy
from compare.training.twin import Twin

SETTLE_SECONDS = 0.3
"""Pause before each timed loop. OpenBLAS worker threads spin for a while after a product before
they sleep: without the pause the scratch worker's spinning threads take a core from the torch
epoch that follows."""


@dataclass(frozen=True)
class BenchConfig:
    data_dir: str
    dataset: str
    networks: tuple[Architecture, ...]
    """The networks timed: the plain one (no norm, no dropout) first; they differ in their
    layers only, never in their widths."""
    dtype: str
    lr: float
    seed: int
    device: str


def synchronize(backend: Backend) -> None:
    """Wait for the GPU (a no-op on the CPU)."""
    if str(backend.device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class Worker:
    """Lives in the worker process: one backend per (network, batch size), all sharing the
    loaded data. A network is given by its index in ``BenchConfig.networks``."""

    def __init__(self, name: str, config: BenchConfig) -> None:
        from compare.data import load_splits

        self.name, self.config = name, config
        self.splits = load_splits(Path(config.data_dir), config.dataset, val_size=0,
                                  seed=config.seed, dtype=parse_dtype(config.dtype))
        # one shuffle per network, all alike: each network's n-th epoch sees the same batches
        self.orders = [EpochOrders(len(self.splits.train_y), config.seed)
                       for _ in config.networks]
        self.backends: dict[tuple[str, int, int], tuple[Backend, Loader]] = {}
        self.repeats: dict[tuple[int, int], int] = {}  # epochs timed, per (network, batch size)
        self.plain_loops: dict[tuple[int, int], Any] = {}  # the yardstick, the same keys

    def backend(self, network: int, batch_size: int, role: str = "product"
                ) -> tuple[Backend, Loader]:
        """The backend timed at ``batch_size`` and its loader; role "plain" is a second copy,
        whose network and data the yardstick trains."""
        key = (role, network, batch_size)
        if key not in self.backends:
            config = TrainConfig(self.config.networks[network],
                                 OptimizerSpec.create("sgd", self.config.lr), 1, batch_size,
                                 self.config.seed, self.config.dtype, self.config.device)
            backend = build_backend(self.name, config)
            self.backends[key] = (backend, backend.loader(self.splits.train_x,
                                                          self.splits.train_y))
        return self.backends[key]

    def epoch(self, network: int, batch_size: int) -> tuple[float, float, float, float]:
        """(epoch, floor, data, plain loop) seconds for one epoch at ``batch_size``; the plain loop
        is timed before the epoch on every other call and after it on the rest, so neither gains
        from going second."""
        timed = self.repeats.get((network, batch_size), 0)
        with blas_thread_policy(batch_size):
            order = self.orders[network].next()
            plain_first = timed % 2 == 1
            plain = self.plain_loop_seconds(network, batch_size, order) if plain_first else 0.0
            epoch = self.product_epoch_seconds(network, batch_size, order)
            if not plain_first:
                plain = self.plain_loop_seconds(network, batch_size, order)
            data = self.data_seconds(network, batch_size, order)
            floor = self.floor_seconds(network, batch_size)
        self.repeats[network, batch_size] = timed + 1
        return epoch, floor, data, plain

    def product_epoch_seconds(self, network: int, batch_size: int, order: np.ndarray) -> float:
        """An epoch of the training loop's own :class:`StepLoop`."""
        backend, loader = self.backend(network, batch_size)
        twin = Twin(backend, loader, History(self.name, str(backend.device)))
        time.sleep(SETTLE_SECONDS)
        synchronize(backend)
        StepLoop([twin], batch_size).epoch(order)
        return twin.records.seconds

    def plain_loop_seconds(self, network: int, batch_size: int, order: np.ndarray) -> float:
        """The backend's yardstick (:mod:`compare.bench.plain_loops`) on the same batches, on a
        second copy of the network."""
        backend, loader = self.backend(network, batch_size, role="plain")  # optimizer unused
        key = (network, batch_size)
        if key not in self.plain_loops:
            self.plain_loops[key] = PLAIN_LOOPS[self.name](backend, loader, self.config.lr)
        time.sleep(SETTLE_SECONDS)
        synchronize(backend)
        started = time.perf_counter()
        self.plain_loops[key].epoch(order, batch_size)
        synchronize(backend)
        return time.perf_counter() - started

    def data_seconds(self, network: int, batch_size: int, order: np.ndarray) -> float:
        """The shuffle's batches gathered, without the steps."""
        backend, loader = self.backend(network, batch_size)
        started = time.perf_counter()
        for _ in loader.batches(order, batch_size):
            pass
        synchronize(backend)
        return time.perf_counter() - started

    def floor_seconds(self, network: int, batch_size: int) -> float:
        """The training step's matrix products alone (see :func:`floor_seconds`)."""
        backend, _ = self.backend(network, batch_size)
        batches = batch_bounds(len(self.splits.train_y), batch_size)
        return floor_seconds(self.config.networks[network].widths, batches,
                             *matmul_library(self.name, backend, self.config.dtype))

    def accuracy(self, network: int, batch_size: int) -> float:
        backend, _ = self.backend(network, batch_size)
        return backend.evaluate(self.splits.test_x, self.splits.test_y).accuracy


def matmul_library(name: str, backend: Backend, dtype: str
                   ) -> tuple[Callable[..., Any], Callable[..., Any], Callable[[], None]]:
    """(new random operand, matmul with ``out=``, synchronize) in the backend's own library."""
    if name == "scratch":
        rng, np_dtype = np.random.default_rng(0), parse_dtype(dtype)
        return (lambda *shape: rng.standard_normal(shape).astype(np_dtype), np.matmul,
                lambda: None)
    import torch

    from compare.harness.arch import torch_dtype

    torch_type = torch_dtype(dtype)
    return (lambda *shape: torch.randn(shape, dtype=torch_type, device=backend.device),
            torch.matmul, lambda: synchronize(backend))


def floor_seconds(widths: tuple[int, ...], batches: list[tuple[int, int]],
                  new: Callable[..., Any], matmul: Callable[..., Any],
                  sync: Callable[[], None]) -> float:
    """The training step's matrix products alone, for every batch of the epoch: forward X·W per
    layer, dW = Xᵀ·dY per layer, dX = dY·Wᵀ for every layer but the first; on preallocated
    operands of the same shapes."""
    operands = {}
    for size in sorted({stop - start for start, stop in batches}):
        operands[size] = [(new(size, fan_in), new(fan_in, fan_out), new(size, fan_out),
                           new(size, fan_out), new(fan_in, fan_out),
                           new(size, fan_in) if index else None)
                          for index, (fan_in, fan_out) in enumerate(pairwise(widths))]
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


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent that forked the worker, before the worker exec'd its own Python."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(name: str, config: BenchConfig, connection: multiprocessing.connection.Connection
          ) -> None:
    """The worker's main: answer ("epoch" | "accuracy", batch size, network) requests until None
    (a network by its index in ``config.networks``). Ctrl-C is the parent's to handle: it ends
    the workers. A worker whose parent is gone (killed by any signal) ends at once and quietly:
    there is no one left to answer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent()
    try:
        answer(name, config, connection)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return


def answer(name: str, config: BenchConfig, connection: multiprocessing.connection.Connection
           ) -> None:
    """The requests, one by one; an error of the work is sent back as the last answer."""
    try:
        worker = Worker(name, config)
        connection.send(("ok", "torch" in sys.modules))
        while (request := connection.recv()) is not None:
            kind, batch_size, network = request
            result = (worker.epoch(network, batch_size) if kind == "epoch"
                      else worker.accuracy(network, batch_size))
            connection.send(("ok", result))
        connection.send(("ok", peak_rss_mib()))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        raise
    except Exception as error:  # reported by the parent as one line, naming the backend
        connection.send(("error", f"{type(error).__name__}: {error}"))


def end_with_parent() -> None:
    """Exit this process, without a word, as soon as the parent process ends, even in the middle
    of an epoch (a watcher thread waits on the parent's sentinel)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="parent watcher", daemon=True).start()
