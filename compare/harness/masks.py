"""One dropout mask for both twins, wherever they are compared.

NumPy's generators and torch's cannot draw the same random numbers, so the scratch twin draws
and the torch twin applies the same mask: a forward hook on the torch twin's ``nn.Dropout``
(which stays torch's plain module) replaces its output, in training mode, by ``x · scale``, where
``scale = mask / (1 - p)`` is what the paired scratch Dropout applied in its latest forward.
Autograd differentiates ``x · scale`` into ``dx = dy · scale``, the formula scratch's backward
writes by hand. torch's own dropout still runs and draws from torch's generator; its output is
dropped. The scratch layer steps first: ``check_layer`` and ``compare parity`` run scratch's pass
before torch's, the training loop steps scratch before torch.

Only a Dropout with 0 < p < 1 is random: p = 0 keeps everything and p = 1 drops everything in
both libraries, and is compared against torch's own output.

For one check, :class:`HeldMaskDropout` holds the mask a scratch Dropout drew at its first
forward for every later forward: finite differences need the same function at every evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

import scratch
from compare.harness.report import LayerCheckError
from compare.layers import DROPOUT, LayerKind, kind_of

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.hooks import RemovableHandle


class MaskError(RuntimeError):
    """A torch Dropout ran in training mode with no mask of its input's shape from its scratch
    twin (the torch twin stepped first)."""


def draws(kind: LayerKind | None, layer: object) -> bool:
    """Whether ``layer``, of the table's ``kind``, is a Dropout that draws a mask: 0 < p < 1."""
    return kind is DROPOUT and 0 < layer.p < 1


def apply_scratch_mask(scratch_layer: scratch.Dropout, label: str) -> Callable[..., object]:
    """The forward hook making a torch Dropout apply ``scratch_layer``'s latest scale (MaskError
    naming ``label`` when it holds none of the input's shape)."""
    import torch

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
             ) -> torch.Tensor | None:
        if not module.training:
            return None
        (x,) = inputs
        scale = scratch_layer.scale
        if scale is None or scale.shape != tuple(x.shape):
            raise MaskError(f"{label}: torch's Dropout ran in training mode before its scratch "
                            f"twin applied a mask to an input of shape {tuple(x.shape)}: step "
                            "the scratch twin first")
        return x * torch.from_numpy(scale).to(device=x.device, dtype=x.dtype)

    return hook


def follow(scratch_layer: scratch.Dropout, torch_layer: nn.Module, label: str
           ) -> RemovableHandle:
    """``torch_layer`` applies ``scratch_layer``'s masks from now on, until the handle is
    removed."""
    return torch_layer.register_forward_hook(apply_scratch_mask(scratch_layer, label))


@contextmanager
def shared_masks(scratch_model: scratch.Sequential, torch_model: nn.Sequential
                 ) -> Iterator[None]:
    """Every random Dropout of ``torch_model`` applies the mask of the scratch Dropout at the
    same index of ``scratch_model`` (the twins of one architecture) while inside."""
    handles = [follow(mine, theirs, f"layer {index} (Dropout)")
               for index, (mine, theirs) in enumerate(zip(scratch_model, torch_model,
                                                          strict=True))
               if draws(kind_of(mine), mine) and kind_of(theirs) is DROPOUT]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class HeldMaskDropout(scratch.Module):
    """``layer`` (a scratch Dropout) holding one mask: drawn from its generator at the first
    training forward, applied again by every later one of the same shape. In evaluation mode it
    is ``layer``, the identity."""

    def __init__(self, layer: scratch.Dropout) -> None:
        self.layer = layer
        self.held: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, D) -> ``x · mask / (1 - p)`` (N, D), the mask kept as ``layer.mask``."""
        if not self.layer.training:
            return self.layer.forward(x)
        if self.held is None or self.held.shape != x.shape:
            self.held = self.layer.draw_mask(x.shape)
        self.layer.mask = self.held
        return self.layer.apply_mask(x, self.held)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """dy (N, D) -> dx (N, D)."""
        return self.layer.backward(grad_out)


def hold_mask(kind: LayerKind, mine: scratch.Module, theirs: nn.Module, label: str
              ) -> scratch.Module:
    """For a pair of random Dropouts (``kind`` the pair's), ``mine`` holding its first mask,
    which ``theirs`` applies from now on; any other ``mine`` as it is. LayerCheckError for a
    torch Dropout that overwrites its input (``inplace=True``): the hook would see the input no
    more."""
    if not draws(kind, mine):
        return mine
    if getattr(theirs, "inplace", False):
        raise LayerCheckError(f"{label}: torch's Dropout(inplace=True) overwrites its input, so "
                              "it cannot be handed scratch's mask; compare nn.Dropout(p)")
    follow(mine, theirs, label)
    return HeldMaskDropout(mine)
