"""Copy weights between the twins, both ways, mapping layout: scratch ``W`` is (in, out), torch
``weight`` is (out, in); biases are (out,) in both."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import scratch

if TYPE_CHECKING:
    from torch import nn


class WeightMismatchError(ValueError):
    """The two networks differ in structure; the message names the layer and both shapes."""


def _paired_linears(
    scratch_model: scratch.Sequential, torch_model: nn.Sequential
) -> list[tuple[int, scratch.Linear, nn.Linear]]:
    """Every (index, scratch Linear, torch Linear), after checking both networks match layer by
    layer: same length, same layer kinds, same Linear shapes."""
    from torch import nn

    kinds = {
        scratch.Linear: nn.Linear,
        scratch.ReLU: nn.ReLU,
        scratch.Sigmoid: nn.Sigmoid,
        scratch.Tanh: nn.Tanh,
        scratch.Softmax: nn.Softmax,
    }
    if len(scratch_model) != len(torch_model):
        raise WeightMismatchError(
            f"scratch network has {len(scratch_model)} layers, torch network has {len(torch_model)}"
        )
    pairs = []
    for index, (mine, theirs) in enumerate(zip(scratch_model, torch_model)):
        if kinds.get(type(mine)) is not type(theirs):
            raise WeightMismatchError(
                f"layer {index}: scratch {type(mine).__name__} vs torch {type(theirs).__name__}"
            )
        if isinstance(mine, scratch.Linear):
            expected = (mine.out_features, mine.in_features)
            if tuple(theirs.weight.shape) != expected:
                raise WeightMismatchError(
                    f"layer {index} (Linear): scratch W {mine.W.shape} (in, out) needs torch "
                    f"weight {expected} (out, in), but torch weight is {tuple(theirs.weight.shape)}"
                )
            pairs.append((index, mine, theirs))
    return pairs


def scratch_to_torch(src: scratch.Sequential, dst: nn.Sequential) -> None:
    """Overwrite ``dst``'s parameters with ``src``'s (cast to ``dst``'s dtype and device)."""
    import torch

    with torch.no_grad():
        for _, mine, theirs in _paired_linears(src, dst):
            theirs.weight.copy_(torch.from_numpy(mine.W.T))
            theirs.bias.copy_(torch.from_numpy(mine.b))


def torch_to_scratch(src: nn.Sequential, dst: scratch.Sequential) -> None:
    """Overwrite ``dst``'s arrays in place with ``src``'s (cast to ``dst``'s dtype)."""
    for _, mine, theirs in _paired_linears(dst, src):
        np.copyto(mine.W, theirs.weight.detach().cpu().numpy().T, casting="same_kind")
        np.copyto(mine.b, theirs.bias.detach().cpu().numpy(), casting="same_kind")


def copy_weights(
    src: scratch.Sequential | nn.Sequential, dst: scratch.Sequential | nn.Sequential
) -> None:
    """Copy ``src``'s weights into ``dst``, one a scratch network and the other a torch one."""
    if isinstance(src, scratch.Sequential) and not isinstance(dst, scratch.Sequential):
        scratch_to_torch(src, dst)
    elif isinstance(dst, scratch.Sequential) and not isinstance(src, scratch.Sequential):
        torch_to_scratch(src, dst)
    else:
        raise TypeError(
            f"copy_weights needs one scratch and one torch network, got "
            f"{type(src).__name__} and {type(dst).__name__}"
        )
