"""The two networks side by side: build a pair with identical weights, and move weights between
them through one exchange format, the state dict.

A state dict maps PyTorch's parameter names (``0.weight``, ``0.bias``, ``2.weight``...) to NumPy
arrays in PyTorch's layout. The one difference of layout between the twins is the Linear weight:
scratch computes ``y = x·W`` with W (in, out), PyTorch ``y = x·Wᵀ`` with weight (out, in);
:func:`torch_layout` is the only place that transposes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.harness.arch import Architecture

if TYPE_CHECKING:
    from torch import nn

StateDict = dict[str, np.ndarray]


class WeightMismatchError(ValueError):
    """The two networks differ in structure; the message names the layer and both shapes."""


def torch_layout(name: str, array: np.ndarray) -> np.ndarray:
    """A scratch parameter array as PyTorch lays it out (a view): Linear weights transposed,
    biases as they are. Transposing twice is the identity, so this also goes back."""
    return array.T if name.endswith(".weight") else array


def scratch_state_dict(scratch_model: scratch.Sequential, *, grads: bool = False) -> StateDict:
    """The scratch network's parameters (or, with ``grads``, their gradients) as a state dict."""
    return {name: torch_layout(name, p.grad if grads else p.value)
            for name, p in scratch_model.named_parameters()}


def torch_state_dict(torch_model: nn.Module, *, grads: bool = False) -> StateDict:
    """The torch network's parameters (or their ``.grad``) as NumPy arrays, on the CPU."""
    return {name: (p.grad if grads else p).detach().cpu().numpy()
            for name, p in torch_model.named_parameters()}


def load_scratch_state_dict(scratch_model: scratch.Sequential, state: Mapping[str, np.ndarray]
                            ) -> None:
    """Overwrite the scratch network's arrays in place (cast to their dtype)."""
    for name, p in scratch_model.named_parameters():
        np.copyto(p.value, torch_layout(name, state[name]), casting="same_kind")


def load_torch_state_dict(torch_model: nn.Module, state: Mapping[str, np.ndarray]) -> None:
    """Overwrite the torch network's parameters (cast to their dtype and device)."""
    import torch

    with torch.no_grad():
        for name, p in torch_model.named_parameters():
            p.copy_(torch.from_numpy(state[name]))


def torch_kind(layer: scratch.Module) -> type[nn.Module] | None:
    """The torch layer class that computes what the scratch ``layer`` computes."""
    from torch import nn

    return {scratch.Linear: nn.Linear, scratch.ReLU: nn.ReLU, scratch.Sigmoid: nn.Sigmoid,
            scratch.Tanh: nn.Tanh, scratch.Softmax: nn.Softmax,
            scratch.Identity: nn.Identity}.get(type(layer))


def check_same_structure(scratch_model: scratch.Sequential, torch_model: nn.Sequential) -> None:
    """Refuse networks that differ in length, layer kinds or Linear shapes (naming the layer)."""
    if len(scratch_model) != len(torch_model):
        raise WeightMismatchError(f"scratch network has {len(scratch_model)} layers, torch "
                                  f"network has {len(torch_model)}")
    for index, (scratch_layer, torch_layer) in enumerate(zip(scratch_model, torch_model)):
        if torch_kind(scratch_layer) is not type(torch_layer):
            raise WeightMismatchError(f"layer {index}: scratch {type(scratch_layer).__name__} vs "
                                      f"torch {type(torch_layer).__name__}")
        if isinstance(scratch_layer, scratch.Linear):
            needed = torch_layout(".weight", scratch_layer.W).shape
            if tuple(torch_layer.weight.shape) != needed:
                raise WeightMismatchError(
                    f"layer {index} (Linear): scratch W {scratch_layer.W.shape} (in, out) needs "
                    f"torch weight {needed} (out, in), but torch weight is "
                    f"{tuple(torch_layer.weight.shape)}")


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
    ``nn.Linear`` draws, and they are copied into the torch network."""
    scratch_model = arch.build_scratch(seed=seed, dtype=dtype)
    torch_model = arch.build_torch(dtype=dtype, device=device)
    copy_weights(scratch_model, torch_model)
    return scratch_model, torch_model
