"""The twins' backends: built from a seed, restored from a checkpoint, or wrapped around a network
to evaluate it. The only module that picks the scratch or the torch backend by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import scratch
from compare.harness.arch import parse_dtype
from compare.harness.twins import StateDict, build_twins, scratch_state_dict
from compare.memory import Footprint, check_fits
from compare.training.backend import EVALUATION_ROWS, Backend
from compare.training.checkpoint import Checkpoint, CheckpointError, network
from compare.training.config import TrainConfig
from compare.training.optimizers import OptimizerSpec

OPTIMIZER_ARRAYS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""The arrays an optimizer keeps per parameter."""


def check_memory(config: TrainConfig, backends: Sequence[str], training_rows: int, *,
                 batch_flag: str = "--batch-size") -> None:
    """Refuse a network and batch that would not fit in memory for ``backends``, naming the
    flag to change; a batch never holds more than the ``training_rows`` there are."""
    footprint = Footprint(config.arch.widths, parse_dtype(config.dtype)().itemsize,
                          networks=len(backends),
                          arrays_per_parameter=3 + OPTIMIZER_ARRAYS[config.optimizer.name],
                          batch_size=min(config.batch_size, training_rows),
                          evaluation_rows=EVALUATION_ROWS)
    check_fits(footprint, f"training {' and '.join(backends)}", batch_flag, config.batch_size)


def build_backend(name: str, config: TrainConfig) -> Backend:
    """The twin ``name`` with its optimizer, holding the initial weights drawn from
    ``config.seed`` (the torch twin gets a copy of the scratch draw)."""
    if name == "scratch":
        return evaluation_backend(config.arch.build_scratch(seed=config.seed, dtype=config.dtype),
                                  config.optimizer)
    _, torch_model = build_twins(config.arch, seed=config.seed, dtype=config.dtype,
                                 device=config.device)
    return evaluation_backend(torch_model, config.optimizer, config.seed)


def initial_state(config: TrainConfig) -> StateDict:
    """The weights both twins of a run with ``config`` start from, drawn again from its seed as
    :func:`build_backend` draws them (so a resumed run has them too), in PyTorch's layout."""
    return scratch_state_dict(config.arch.build_scratch(seed=config.seed, dtype=config.dtype))


def restore_backend(name: str, config: TrainConfig, saved: Checkpoint, steps_taken: int
                    ) -> Backend:
    """The twin ``name`` holding the weights, optimizer state and random state of its checkpoint
    ``saved``, written after ``steps_taken`` steps, all checked first (CheckpointError naming
    the file)."""
    backend = evaluation_backend(network(saved, name, device=config.device), config.optimizer,
                                 config.seed)
    try:
        backend.load_optimizer_state(saved.optimizer, steps_taken)
    except ValueError as error:
        raise CheckpointError(f"{saved.path}: its optimizer state does not fit the run's "
                              f"{config.optimizer.name} optimizer: {error}") from None
    try:
        backend.load_random_state(saved.random_state)
    except ValueError as error:
        raise CheckpointError(f"{saved.path}: its random state cannot be restored: {error}"
                              ) from None
    return backend


def evaluation_backend(model: Any, optimizer: OptimizerSpec | None = None, seed: int = 0
                       ) -> Backend:
    """The backend around a network of either twin; without an ``optimizer`` it only
    evaluates. ``seed`` starts the torch twin's random draws (a scratch network's Dropout
    layers hold generators of their own)."""
    if isinstance(model, scratch.Sequential):
        from compare.training.scratch_backend import ScratchBackend

        return ScratchBackend(model, optimizer)
    from compare.training.torch_backend import TorchBackend

    return TorchBackend(model, optimizer, seed)
