"""The two networks side by side: build a pair with identical weights, and move weights between
them through one exchange format, the state dict.

A state dict maps PyTorch's parameter names (``0.weight``, ``0.bias``, ``2.weight``...) to NumPy
arrays in PyTorch's layout. The one difference of layout between the twins is the Linear weight:
scratch computes ``y = x·W`` with W (in, out), PyTorch ``y = x·Wᵀ`` with weight (out, in); the
layer table declares it (``LayerKind.transposed``), and ``LayerKind.torch_layout`` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.harness.arch import Architecture
from compare.layers import LayerKind, kind_of, torch_layout

if TYPE_CHECKING:
    from torch import nn

StateDict = dict[str, np.ndarray]


class WeightMismatchError(ValueError):
    """The two networks differ in structure; the message names the layer and both shapes."""


def layer_kind(layer: object, index: int) -> LayerKind:
    """The table's kind of the network's layer ``index`` (WeightMismatchError if it has none)."""
    kind = kind_of(layer)
    if kind is None:
        raise WeightMismatchError(f"layer {index}: {type(layer).__name__} is not in the layer "
                                  "table (compare/layers/table.py)")
    return kind


def scratch_state_dict(scratch_model: scratch.Sequential, *, grads: bool = False) -> StateDict:
    """The scratch network's parameters and buffers (or, with ``grads``, the parameters'
    gradients) as a state dict: PyTorch's names, PyTorch's layout."""
    state = {}
    for index, layer in enumerate(scratch_model):
        kind = layer_kind(layer, index)
        for name, p in layer.named_parameters():
            state[f"{index}.{name}"] = kind.torch_layout(name, p.grad if grads else p.value)
        if not grads:
            state |= {f"{index}.{name}": array for name, array in layer.named_buffers()}
    return state


def torch_state_dict(torch_model: nn.Module, *, grads: bool = False) -> StateDict:
    """The torch network's parameters and buffers (or the parameters' ``.grad``) as NumPy
    arrays, on the CPU."""
    named = (torch_model.named_parameters() if grads else torch_model.state_dict().items())
    return {name: (p.grad if grads else p).detach().cpu().numpy() for name, p in named}


def load_scratch_state_dict(scratch_model: scratch.Sequential, state: Mapping[str, np.ndarray]
                            ) -> None:
    """Overwrite the scratch network's arrays in place (cast to their dtype)."""
    for index, layer in enumerate(scratch_model):
        kind = layer_kind(layer, index)
        for name, p in layer.named_parameters():
            np.copyto(p.value, kind.torch_layout(name, state[f"{index}.{name}"]),
                      casting="same_kind")
        for name, array in layer.named_buffers():
            np.copyto(array, state[f"{index}.{name}"], casting="same_kind")


def load_torch_state_dict(torch_model: nn.Module, state: Mapping[str, np.ndarray]) -> None:
    """Overwrite the torch network's parameters and buffers (cast to their dtype and device)."""
    import torch

    with torch.no_grad():
        for name, p in torch_model.state_dict().items():
            p.copy_(torch.from_numpy(state[name]))


def check_same_structure(scratch_model: scratch.Sequential, torch_model: nn.Sequential) -> None:
    """Refuse networks that differ in length, layer kinds, settings, parameter names or shapes
    (naming the layer)."""
    if len(scratch_model) != len(torch_model):
        longer, name = max((scratch_model, "scratch"), (torch_model, "torch"),
                           key=lambda pair: len(pair[0]))
        first = min(len(scratch_model), len(torch_model))
        raise WeightMismatchError(
            f"scratch network has {len(scratch_model)} layers, torch network has "
            f"{len(torch_model)}: {name}'s layer {first} ({type(longer[first]).__name__}) has no "
            "twin")
    for index, (scratch_layer, torch_layer) in enumerate(zip(scratch_model, torch_model,
                                                             strict=True)):
        kind = layer_kind(scratch_layer, index)
        if layer_kind(torch_layer, index) is not kind:
            raise WeightMismatchError(f"layer {index}: scratch {type(scratch_layer).__name__} vs "
                                      f"torch {type(torch_layer).__name__}")
        check_same_layer(f"layer {index} ({type(scratch_layer).__name__})", kind, scratch_layer,
                         torch_layer)


def check_same_layer(where: str, kind: LayerKind, scratch_layer: scratch.Module,
                     torch_layer: nn.Module) -> None:
    """Refuse a pair of one kind whose settings, parameter names or shapes differ (an array of a
    module inside the scratch layer laid out as that module's kind says)."""
    try:
        settings = kind.settings_of(scratch_layer), kind.settings_of(torch_layer)
    except ValueError as error:
        raise WeightMismatchError(f"{where}: {error}") from None
    if settings[0] != settings[1]:
        raise WeightMismatchError(f"{where}: scratch settings {settings[0]} vs torch "
                                  f"{settings[1]}")
    mine = dict(arrays(scratch_layer))
    theirs = {name: tuple(tensor.shape) for name, tensor in torch_layer.state_dict().items()}
    if mine.keys() != theirs.keys():
        raise WeightMismatchError(f"{where}: scratch holds {sorted(mine) or 'nothing'}, torch "
                                  f"{sorted(theirs) or 'nothing'}")
    for name, array in mine.items():
        laid_out = torch_layout(scratch_layer, kind, name, array)
        needed = laid_out.shape
        if needed != theirs[name]:
            layout = " (its transpose)" if laid_out is not array else ""
            raise WeightMismatchError(
                f"{where}: scratch {kind.symbol(name)} {array.shape} needs torch {name} "
                f"{needed}{layout}, but torch {name} is {theirs[name]}")


def arrays(layer: scratch.Module) -> list[tuple[str, np.ndarray]]:
    """A scratch layer's parameters' values and its buffers, by name."""
    return [(name, p.value) for name, p in layer.named_parameters()] + list(layer.named_buffers())


def torch_twin(scratch_model: scratch.Sequential, *, device: str = "cpu") -> nn.Sequential:
    """The torch network of the same layers as ``scratch_model``, holding a copy of its weights
    (of their dtype)."""
    import torch
    from torch import nn

    dtype = getattr(torch, np.dtype(scratch_model.parameters()[0].value.dtype).name)
    torch_model = nn.Sequential(*(layer_kind(layer, index).torch_like(layer, dtype=dtype,
                                                                       device=device)
                                  for index, layer in enumerate(scratch_model)))
    copy_weights(scratch_model, torch_model)
    return torch_model


def copy_weights(src: scratch.Sequential | nn.Sequential, dst: scratch.Sequential | nn.Sequential
                 ) -> None:
    """Copy ``src``'s weights into ``dst``, one a scratch network and the other a torch one."""
    if isinstance(src, scratch.Sequential) and not isinstance(dst, scratch.Sequential):
        check_same_structure(src, dst)
        load_torch_state_dict(dst, scratch_state_dict(src))
    elif isinstance(dst, scratch.Sequential) and not isinstance(src, scratch.Sequential):
        check_same_structure(dst, src)
        load_scratch_state_dict(dst, torch_state_dict(src))
    else:
        raise TypeError(f"copy_weights needs one scratch and one torch network, got "
                        f"{type(src).__name__} and {type(dst).__name__}")


def build_twins(arch: Architecture, *, seed: int, dtype: str = "float32", device: str = "cpu"
                ) -> tuple[scratch.Sequential, nn.Sequential]:
    """(scratch_model, torch_model) holding identical weights: scratch draws them from ``seed`` as
    ``nn.Linear`` draws, and they are copied into the torch network. The torch network's own
    draw, overwritten by the copy, is made on a fork of torch's global generator, so a script's
    next ``torch.rand`` gives what it would have without the twins."""
    import torch

    scratch_model = arch.build_scratch(seed=seed, dtype=dtype)
    where = torch.device(device)
    with torch.random.fork_rng(devices=[where.index or 0] if where.type == "cuda" else []):
        torch_model = arch.build_torch(dtype=dtype, device=device)
    copy_weights(scratch_model, torch_model)
    return scratch_model, torch_model
