"""Checkpoints in safe formats, written atomically, loadable into either twin.

Both twins save the same state dict: PyTorch's parameter names (``0.weight``, ``0.bias``...) and
PyTorch's layout (weights (out, in)), batch norm's buffers by PyTorch's names too
(``1.running_mean``, ``1.running_var``, ``1.num_batches_tracked``: an int64 count), plus a JSON
``meta`` that rebuilds the network, its input normalization and the run, the optimizer's state,
and what the interrupted epoch recorded so far (``progress``), so that a run continues exactly.

- scratch: ``checkpoint.npz``, read with ``allow_pickle=False``: one array per parameter and
  buffer, ``optimizer/<index>/<name>`` and ``progress/<name>`` arrays, and ``meta``;
- torch: ``checkpoint.pt``, read with ``weights_only=True``: ``{"state_dict", "optimizer"
  (torch.optim's state_dict), "progress", "meta" (a JSON string)}``.

``meta["format"]`` is :data:`FORMAT`; a file without it, or with another, is refused.

A network with Dropout also keeps where the twin's random draws stand, ``random_state``: the
scratch twin in ``meta``, each Dropout's generator state (NumPy's PCG64 dict) by the layer's
index; the torch twin as an entry of its file, torch's generator states (uint8 tensors) by
``cpu`` and ``cuda``. Without them such a run cannot continue exactly, and ``--resume`` refuses it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

import scratch
from compare.data.files import DATASETS
from compare.errors import UserError
from compare.harness.arch import DTYPES, ArchError, Architecture, parse_dtype
from compare.harness.twins import (
    StateDict,
    load_scratch_state_dict,
    load_torch_state_dict,
    scratch_state_dict,
)
from compare.memory import Footprint, check_fits

if TYPE_CHECKING:
    from torch import nn

FORMAT = 2
SUFFIXES = {"scratch": ".npz", "torch": ".pt"}
NETWORK_KEYS = {"arch": str, "activation": str, "dtype": str}
DATA_KEYS = {"dataset": str, "data_dir": str, "val_size": int, "seed": int, "mean": float,
             "std": float}


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not describe a network; names the file."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds: the state dict as NumPy arrays, the twin's own optimizer
    state, the interrupted epoch's records, its random state (empty for a network without
    Dropout), and ``meta``."""

    path: Path
    written_by: str
    meta: dict
    state: StateDict
    optimizer: dict | None = None
    progress: dict[str, np.ndarray] = field(default_factory=dict)
    random_state: dict = field(default_factory=dict)

    def architecture(self) -> Architecture:
        return Architecture.from_meta(self.meta)


def process_umask() -> int:
    """The process's umask (reading it means setting it: it is set back at once)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path`` and
    sync the folder, so that ``path`` is always a whole checkpoint, old or new."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            # mkstemp makes it 0600: as readable as the event files beside it instead
            os.fchmod(file.fileno(), 0o666 & ~process_umask())
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:  # a write names no file
            raise OSError(error.errno, f"{error.strerror}; the checkpoint there is kept",
                          str(path)) from error
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def save_npz(path: Path, state: StateDict, meta: dict, optimizer: dict | None = None,
             progress: Mapping[str, np.ndarray] | None = None) -> None:
    """The scratch twin's checkpoint; ``optimizer`` is a ``scratch.optim`` state_dict, ``meta``
    may hold the Dropout layers' ``random_state``."""
    optimizer = optimizer or {}
    arrays = dict(state)
    scalars = {key: value for key, value in optimizer.items() if key != "state"}
    for index, named in optimizer.get("state", {}).items():
        arrays |= {f"optimizer/{index}/{name}": array for name, array in named.items()}
    arrays |= {f"progress/{name}": array for name, array in (progress or {}).items()}
    text = json.dumps(meta | {"format": FORMAT, "optimizer_scalars": scalars})
    write_atomically(path, lambda file: np.savez(file, meta=np.array(text), **arrays))


def save_pt(path: Path, state: Mapping[str, Any], meta: dict, optimizer: dict | None = None,
            progress: Mapping[str, np.ndarray] | None = None,
            random_state: Mapping[str, np.ndarray] | None = None) -> None:
    """The torch twin's checkpoint (``state`` holds tensors, saved from the CPU; ``optimizer``
    is a ``torch.optim`` state_dict; ``random_state`` torch's generator states)."""
    import torch

    def tensors(arrays: Mapping[str, np.ndarray] | None) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array) for name, array in (arrays or {}).items()}

    saved = {"state_dict": {name: value.detach().cpu() for name, value in state.items()},
             "optimizer": optimizer, "progress": tensors(progress),
             "meta": json.dumps(meta | {"format": FORMAT})}
    if random_state:
        saved["random_state"] = tensors(random_state)
    write_atomically(path, lambda file: torch.save(saved, file))


def _read_npz(path: Path) -> Checkpoint:
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        arrays = {key: archive[key] for key in archive.files if key != "meta"}
    if not isinstance(meta, dict):
        return Checkpoint(path, "scratch", meta, {})  # refused by check_meta
    optimizer: dict = {"state": {}, **meta.pop("optimizer_scalars", {})}
    for key, array in arrays.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/")
            optimizer["state"].setdefault(int(index), {})[name] = array
    progress = {key.split("/", 1)[1]: a for key, a in arrays.items() if key.startswith("progress/")}
    state = {key: array for key, array in arrays.items() if "/" not in key}
    return Checkpoint(path, "scratch", meta, state, optimizer, progress,
                      meta.pop("random_state", {}))


def _read_pt(path: Path) -> Checkpoint:
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = {name: value.numpy() for name, value in saved["state_dict"].items()}
    progress = {name: value.numpy() for name, value in saved.get("progress", {}).items()}
    random_state = {name: value.numpy() for name, value in saved.get("random_state", {}).items()}
    return Checkpoint(path, "torch", json.loads(saved["meta"]), state, saved.get("optimizer"),
                      progress, random_state)


def check_meta(path: Path, meta: object, keys: Mapping[str, type]) -> None:
    """``meta`` is a JSON object holding ``keys`` with values of their types."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta is a {type(meta).__name__}, not an object: not a "
                              "checkpoint of this program")
    for key, kind in keys.items():
        value = meta.get(key)
        allowed = (int, float) if kind is float else (kind,)
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, allowed):
            raise CheckpointError(f"{path}: meta {key!r} should be a {kind.__name__}, found "
                                  f"{value!r}")
    choices = {"dtype": DTYPES, "dataset": DATASETS}
    for key in choices.keys() & keys.keys():
        if meta[key] not in choices[key]:
            raise CheckpointError(f"{path}: meta {key} {meta[key]!r} is not one of "
                                  f"{', '.join(choices[key])}")


COUNT_DTYPE = np.dtype(np.int64)
"""The dtype of a count a network keeps (batch norm's ``num_batches_tracked``), as PyTorch's."""


def _check_arrays(path: Path, state: StateDict, dtype: str) -> None:
    """Weights of the run's dtype (native byte order) or counts (int64, never negative), dense,
    every one finite, running variances never negative. Which array is which,
    :func:`_check_state` checks against the network."""
    for name, array in state.items():
        if array.dtype not in (np.dtype(dtype), COUNT_DTYPE):
            raise CheckpointError(f"{path}: {name} holds {array.dtype} values, not the "
                                  f"{dtype} weights its meta says")
        if array.dtype == COUNT_DTYPE and np.any(array < 0):
            raise CheckpointError(f"{path}: {name} holds a negative count")
        if name.endswith(".running_var") and np.any(array < 0):  # batch norm's: a variance
            raise CheckpointError(f"{path}: {name} holds a negative variance")
        if not (array.flags.c_contiguous or array.flags.f_contiguous):
            raise CheckpointError(f"{path}: {name} is not a dense array (strides "
                                  f"{array.strides})")
        if not np.all(np.isfinite(array)):
            raise CheckpointError(f"{path}: {name} holds non-finite weights (NaN or inf): the run "
                                  "that wrote it diverged; use an earlier checkpoint")


def _check_is_file(path: Path) -> None:
    """``path`` is a regular file (a FIFO would block the read; say what it is instead)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{path}: a folder, not a checkpoint file")
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: not a regular file (a pipe, socket or device), not a "
                              "checkpoint file")


def read(path: Path) -> Checkpoint:
    """The checkpoint at ``path``, its meta and weights checked."""
    readers = {SUFFIXES["scratch"]: _read_npz, SUFFIXES["torch"]: _read_pt}
    _check_is_file(path)
    if path.suffix not in readers:
        raise CheckpointError(f"{path}: unknown checkpoint type; expected a .npz (scratch) or .pt "
                              "(torch) file")
    if path.suffix == SUFFIXES["torch"]:
        import torch  # noqa: F401 - torch that cannot be imported is not the file's fault
    try:
        saved = readers[path.suffix](path)
    except Exception as error:  # a corrupt file can fail in many ways; all mean the same here
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                              f"{error})") from None
    check_meta(path, saved.meta, NETWORK_KEYS)
    if saved.meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: meta 'format' {saved.meta.get('format')!r} is not the one "
                              f"this program writes ({FORMAT})")
    _check_arrays(path, saved.state, saved.meta["dtype"])
    return saved


def _check_state(path: Path, arch: Architecture, expected: StateDict, state: StateDict) -> None:
    """Every parameter and buffer of ``arch`` present with its shape and dtype, and nothing
    else."""
    for name, array in expected.items():
        stored = state.get(name)
        if stored is None or stored.shape != array.shape:
            found = "missing" if stored is None else f"shape {stored.shape}"
            raise CheckpointError(f"{path}: {name} should have shape {array.shape} for "
                                  f"{arch.spec}, found {found}")
        if stored.dtype != array.dtype:
            raise CheckpointError(f"{path}: {name} should hold {array.dtype} values for "
                                  f"{arch.activation_label}, found {stored.dtype}")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path}: parameters {unexpected} do not belong to {arch.spec}")


def network(saved: Checkpoint, backend: str | None = None, *, device: str = "cpu"
            ) -> scratch.Sequential | nn.Sequential:
    """The checkpoint's weights in ``backend``'s network (default: the twin that wrote it)."""
    try:
        arch = saved.architecture()
    except ArchError as error:
        raise CheckpointError(f"{saved.path}: meta does not describe a network ({error})") from None
    try:  # both twins' copies of the network, before any is built
        check_fits(Footprint(arch.widths, parse_dtype(saved.meta["dtype"])().itemsize,
                             networks=2, arrays_per_parameter=1), "its network")
    except UserError as error:
        raise CheckpointError(f"{saved.path}: meta {error}") from None
    scratch_model = arch.build_scratch(seed=0, dtype=saved.meta["dtype"])
    _check_state(saved.path, arch, scratch_state_dict(scratch_model), saved.state)
    if (backend or saved.written_by) == "scratch":
        load_scratch_state_dict(scratch_model, saved.state)
        return scratch_model
    torch_model = arch.build_torch(dtype=saved.meta["dtype"], device=device)
    load_torch_state_dict(torch_model, saved.state)
    return torch_model


def load(path: Path, backend: str | None = None, *, device: str = "cpu"
         ) -> tuple[dict, scratch.Sequential | nn.Sequential]:
    """Read a checkpoint of either twin into ``backend``'s network (default: the twin that wrote
    it). ``meta["written_by"]`` says which twin wrote it."""
    saved = read(path)
    model = network(saved, backend, device=device)
    return saved.meta | {"written_by": saved.written_by}, model
