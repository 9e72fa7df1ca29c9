"""Checkpoints in safe formats, written atomically, loadable into either twin.

scratch: ``checkpoint.npz`` with each Linear's ``W`` (in, out) and ``b`` as ``<index>.W`` /
``<index>.b`` and a JSON ``meta`` string, read with ``allow_pickle=False``.
torch: ``checkpoint.pt``, ``{"state_dict": ..., "meta": JSON string}``, read with
``weights_only=True``. ``meta`` holds what rebuilds the network and its input normalization.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import scratch
from compare.arch import ArchError, Architecture

if TYPE_CHECKING:
    from torch import nn

SUFFIXES = {"scratch": ".npz", "torch": ".pt"}


class CheckpointError(Exception):
    """A checkpoint that cannot be read or does not describe a network; names the file."""


def _write_atomically(path: Path, write: Any) -> None:
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


def save_scratch(path: Path, model: scratch.Sequential, meta: dict) -> None:
    arrays = {}
    for index, layer in enumerate(model):
        if isinstance(layer, scratch.Linear):
            arrays[f"{index}.W"], arrays[f"{index}.b"] = layer.W, layer.b
    _write_atomically(path, lambda f: np.savez(f, meta=np.array(json.dumps(meta)), **arrays))


def save_torch(path: Path, model: nn.Sequential, meta: dict) -> None:
    import torch

    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    saved = {"state_dict": state, "meta": json.dumps(meta)}
    _write_atomically(path, lambda f: torch.save(saved, f))


def _architecture(path: Path, meta: dict) -> Architecture:
    try:
        return Architecture.parse(meta["arch"], meta["activation"])
    except (KeyError, ArchError) as error:
        raise CheckpointError(f"{path}: meta does not describe a network ({error})") from None


def _read(path: Path) -> tuple[str, dict, dict[str, np.ndarray]]:
    """(backend that wrote it, meta, arrays in scratch layout keyed ``<index>.W`` / ``.b``)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == SUFFIXES["scratch"]:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(str(archive["meta"]))
                arrays = {key: archive[key] for key in archive.files if key != "meta"}
            return "scratch", meta, arrays
        if path.suffix == SUFFIXES["torch"]:
            import torch

            saved = torch.load(path, map_location="cpu", weights_only=True)
            meta = json.loads(saved["meta"])
            arrays = {}
            for name, value in saved["state_dict"].items():
                index, kind = name.split(".")
                array = value.numpy()
                arrays[f"{index}.{'W' if kind == 'weight' else 'b'}"] = (
                    array.T if kind == "weight" else array)
            return "torch", meta, arrays
    except CheckpointError:
        raise
    except Exception as error:  # a corrupt file can fail in many ways; all mean the same here
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                              f"{error})") from None
    raise CheckpointError(f"{path}: unknown checkpoint type; expected a .npz (scratch) or .pt "
                          "(torch) file")


def load(path: Path, backend: str | None = None, *, device: str = "cpu"
         ) -> tuple[dict, scratch.Sequential | nn.Sequential]:
    """Read a checkpoint of either twin into ``backend``'s network (default: the one that wrote
    it). Crossing over builds the writer's network and copies through ``compare.weights``."""
    written_by, meta, arrays = _read(path)
    arch = _architecture(path, meta)
    model = arch.build_scratch(seed=0, dtype=meta.get("dtype", "float32"))
    for index, layer in enumerate(model):
        if isinstance(layer, scratch.Linear):
            for name, target in [("W", layer.W), ("b", layer.b)]:
                stored = arrays.get(f"{index}.{name}")
                if stored is None or stored.shape != target.shape:
                    found = "missing" if stored is None else f"shape {stored.shape}"
                    raise CheckpointError(f"{path}: layer {index} {name} should have shape "
                                          f"{target.shape} for {arch.spec}, found {found}")
                np.copyto(target, stored, casting="same_kind")
    meta["written_by"] = written_by
    if (backend or written_by) == "scratch":
        return meta, model
    from compare.weights import scratch_to_torch

    reference = arch.build_torch(dtype=meta.get("dtype", "float32"), device=device)
    scratch_to_torch(model, reference)
    return meta, reference
