"""``nn.Sequential(Linear, act, ..., Linear, Softmax(dim=1))`` from a list of widths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import nn


def mlp(
    widths: Sequence[int],
    activation: Callable[[], nn.Module] = nn.ReLU,
    *,
    norm: Callable[[int], nn.Module] | None = None,
    dropout: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> nn.Sequential:
    """The network for widths like (784, 128, 64, 10); its output is class probabilities (N, C).
    ``activation()`` makes each hidden activation layer (a class, such as ``nn.Tanh``). With
    ``norm`` (such as ``nn.BatchNorm1d``, called with the width) and ``dropout`` > 0, each hidden
    layer is ``Linear, norm, act, Dropout(dropout)``.

    Weights come from PyTorch's own initialization; the harness overwrites them with the scratch
    network's draw when the two twins must start equal.
    """
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got {list(widths)}")
    layers: list[nn.Module] = []
    for fan_in, fan_out in pairwise(widths[:-1]):
        layers.append(nn.Linear(fan_in, fan_out, dtype=dtype, device=device))
        layers += [norm(fan_out)] if norm else []
        layers.append(activation())
        layers += [nn.Dropout(dropout)] if dropout else []
    layers.append(nn.Linear(widths[-2], widths[-1], dtype=dtype, device=device))
    return nn.Sequential(*layers, nn.Softmax(dim=1))


def logits_of(model: nn.Sequential) -> nn.Sequential:
    """The network without its final Softmax (shares the modules): what CrossEntropyLoss takes."""
    return model[:-1]
