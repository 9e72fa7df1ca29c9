"""Checkpoints in safe formats, written atomically, loadable into either twin.

Both twins save the same state dict: PyTorch's parameter names (``0.weight``, ``0.bias``...) and
PyTorch's layout (weights (out, in)), plus a JSON ``meta`` that rebuilds the network and its
input normalization.

- scratch: ``checkpoint.npz``, one array per parameter and ``meta``, read with
  ``allow_pickle=False``;
- torch: ``checkpoint.pt``, ``{"state_dict": ..., "meta": JSON string}``, read with
  ``weights_only=True``.

Format 1 (before the state dict was shared) stored scratch weights as ``<index>.W`` (in, out)
and ``<index>.b``; such files still load.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

import scratch
from compare.harness.arch import ArchError, Architecture
from compare.harness.twins import (
    StateDict,
    load_scratch_state_dict,
    load_torch_state_dict,
    scratch_state_dict,
    torch_layout,
)

if TYPE_CHECKING:
    from torch import nn

FORMAT = 2
SUFFIXES = {"scratch": ".npz", "torch": ".pt"}


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not describe a network; names the file."""


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_npz(path: Path, state: StateDict, meta: dict) -> None:
    """The scratch twin's checkpoint."""
    text = json.dumps(meta | {"format": FORMAT})
    write_atomically(path, lambda file: np.savez(file, meta=np.array(text), **state))


def save_pt(path: Path, state: Mapping[str, Any], meta: dict) -> None:
    """The torch twin's checkpoint (``state`` holds tensors, saved from the CPU)."""
    import torch

    saved = {"state_dict": {name: value.detach().cpu() for name, value in state.items()},
             "meta": json.dumps(meta | {"format": FORMAT})}
    write_atomically(path, lambda file: torch.save(saved, file))


def _upgrade_format_1(arrays: dict[str, np.ndarray]) -> StateDict:
    """Format 1's ``<index>.W`` (in, out) and ``<index>.b`` as a state dict."""
    names = {"W": "weight", "b": "bias"}
    state = {}
    for key, value in arrays.items():
        index, kind = key.split(".")
        name = f"{index}.{names[kind]}"
        state[name] = torch_layout(name, value)
    return state


def _read_npz(path: Path) -> tuple[dict, StateDict]:
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        arrays = {key: archive[key] for key in archive.files if key != "meta"}
    return meta, (arrays if meta.get("format") else _upgrade_format_1(arrays))


def _read_pt(path: Path) -> tuple[dict, StateDict]:
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    return json.loads(saved["meta"]), {k: v.numpy() for k, v in saved["state_dict"].items()}


def read(path: Path) -> tuple[str, dict, StateDict]:
    """(the twin that wrote it, meta, state dict) of the checkpoint at ``path``."""
    readers = {SUFFIXES["scratch"]: ("scratch", _read_npz), SUFFIXES["torch"]: ("torch", _read_pt)}
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix not in readers:
        raise CheckpointError(f"{path}: unknown checkpoint type; expected a .npz (scratch) or .pt "
                              "(torch) file")
    written_by, reader = readers[path.suffix]
    try:
        meta, state = reader(path)
    except Exception as error:  # a corrupt file can fail in many ways; all mean the same here
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                              f"{error})") from None
    return written_by, meta, state


def _check_state(path: Path, arch: Architecture, expected: StateDict, state: StateDict) -> None:
    """Every parameter of ``arch`` present with its shape, and nothing else."""
    for name, array in expected.items():
        stored = state.get(name)
        if stored is None or stored.shape != array.shape:
            found = "missing" if stored is None else f"shape {stored.shape}"
            raise CheckpointError(f"{path}: {name} should have shape {array.shape} for "
                                  f"{arch.spec}, found {found}")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path}: parameters {unexpected} do not belong to {arch.spec}")


def load(path: Path, backend: str | None = None, *, device: str = "cpu"
         ) -> tuple[dict, scratch.Sequential | nn.Sequential]:
    """Read a checkpoint of either twin into ``backend``'s network (default: the twin that wrote
    it). ``meta["written_by"]`` says which twin wrote it."""
    written_by, meta, state = read(path)
    try:
        arch = Architecture.parse(meta["arch"], meta["activation"])
    except (KeyError, ArchError) as error:
        raise CheckpointError(f"{path}: meta does not describe a network ({error})") from None
    dtype = meta.get("dtype", "float32")
    scratch_model = arch.build_scratch(seed=0, dtype=dtype)
    _check_state(path, arch, scratch_state_dict(scratch_model), state)
    meta["written_by"] = written_by
    if (backend or written_by) == "scratch":
        load_scratch_state_dict(scratch_model, state)
        return meta, scratch_model
    torch_model = arch.build_torch(dtype=dtype, device=device)
    load_torch_state_dict(torch_model, state)
    return meta, torch_model
