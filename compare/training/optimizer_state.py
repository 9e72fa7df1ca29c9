"""An optimizer state read from a checkpoint, checked to be exactly what the twin's optimizer
would have made after the run's steps, before any of it reaches an optimizer step.

A fused torch step trusts its state tensors: one of another shape, a 0-dim one or an expanded
(stride 0) one makes it crash or write past the tensor's memory. So every entry must have the
parameter's shape and dtype, be contiguous and finite, and the step count must be the run's.
The optimizer's settings (learning rate, momentum, weight decay...) are never taken from the
file: the run's settings are the one truth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from compare.training.optimizers import ADAM_NAMES, OptimizerSpec

MEANS_OF_SQUARES = ("exp_avg_sq",)
"""Entries that are running means of squared gradients (Adam's and AdamW's second moment): never
below 0."""


def expected_entries(twin: str, optimizer: str, steps_taken: int) -> frozenset[str]:
    """The state entries each parameter has after ``steps_taken`` steps: torch.optim makes its
    buffers at the first step; scratch's Adam and AdamW hold their zero moments from the
    start."""
    if optimizer == "momentum":
        return frozenset({"momentum_buffer"} if steps_taken else ())
    if optimizer in ADAM_NAMES and twin == "torch":
        return frozenset({"step", "exp_avg", "exp_avg_sq"} if steps_taken else ())
    if optimizer in ADAM_NAMES:
        return frozenset({"exp_avg", "exp_avg_sq"})
    return frozenset()


def as_array(name: str, value: Any) -> np.ndarray:
    """A state entry as a NumPy array: a NumPy array as it is, a torch tensor only when it is
    a plain dense tensor on the CPU (an expanded or strided view is refused)."""
    if isinstance(value, np.ndarray):
        return value
    import torch

    if not torch.is_tensor(value):
        raise ValueError(f"{name} is a {type(value).__name__}, not a tensor")
    if value.layout != torch.strided or value.device.type != "cpu" or value.is_complex():
        raise ValueError(f"{name} is a {value.layout} {value.dtype} tensor on {value.device}, "
                         "not a dense real tensor")
    if not value.is_contiguous() or (value.dim() and min(value.stride()) == 0):
        raise ValueError(f"{name} is not a contiguous tensor (strides {value.stride()})")
    try:
        return value.numpy()
    except (TypeError, RuntimeError):  # bfloat16, quantized, requires_grad...
        raise ValueError(f"{name} is a {value.dtype} tensor that is not plain data (quantized or "
                         "requiring a gradient)") from None


def check_entry(name: str, array: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """One buffer: the parameter's shape and dtype, C-contiguous, every value finite."""
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, the parameter {shape}")
    if array.dtype != dtype:
        raise ValueError(f"{name} holds {array.dtype} values, the parameter {dtype}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} is not contiguous")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")



def check_step(name: str, value: Any, steps_taken: int) -> None:
    """A step count: a number (a 0-dim tensor in torch) equal to the steps the run has taken."""
    if isinstance(value, bool):
        raise ValueError(f"{name} is {value!r}, not a step count")
    if not isinstance(value, int | float):
        array = as_array(name, value)
        if array.shape != () or array.dtype.kind != "f":
            raise ValueError(f"{name} is a {array.dtype} array of shape {array.shape}, not a "
                             "0-dim floating-point step count")
        value = float(array)
    if not (math.isfinite(value) and value == steps_taken):
        raise ValueError(f"{name} is {value}, but the run has taken {steps_taken} steps")


def check_optimizer_state(state: Mapping[str, Any], twin: str, spec: OptimizerSpec,
                          parameters: Sequence[tuple[tuple[int, ...], np.dtype]],
                          steps_taken: int) -> dict[int, dict[str, Any]]:
    """``state`` (a ``state_dict()`` of ``twin``'s optimizer for ``spec``, read from a file) is
    what that optimizer makes for ``parameters`` ((shape, dtype) each, in order) after
    ``steps_taken`` steps; its per-parameter entries, or ValueError naming the entry."""
    per_parameter = state.get("state") if isinstance(state, Mapping) else None
    if not isinstance(per_parameter, Mapping):
        raise ValueError("it holds no per-parameter state")
    entries = expected_entries(twin, spec.name, steps_taken)
    wanted = set(range(len(parameters))) if entries else set()
    if set(per_parameter) != wanted:
        raise ValueError(f"it has state for parameters {sorted(per_parameter, key=str)}, the "
                         f"run's {spec.name} optimizer after {steps_taken} steps for "
                         f"{sorted(wanted)}")
    for index, (shape, dtype) in enumerate(parameters if entries else ()):
        named = per_parameter[index]
        if not isinstance(named, Mapping) or set(named) != entries:
            found = sorted(named) if isinstance(named, Mapping) else type(named).__name__
            raise ValueError(f"parameter {index} has state {found}, {spec.name} makes "
                             f"{sorted(entries)}")
        for key, value in named.items():
            where = f"optimizer state {key} of parameter {index}"
            if key == "step":
                check_step(where, value, steps_taken)
            else:
                array = as_array(where, value)
                check_entry(where, array, shape, dtype)
                if key in MEANS_OF_SQUARES and np.any(array < 0):
                    raise ValueError(f"{where} holds negative values (a mean of squares never "
                                     "does)")
    if twin == "scratch" and spec.name in ADAM_NAMES:
        check_step("optimizer step", state.get("step"), steps_taken)
    return dict(per_parameter)
