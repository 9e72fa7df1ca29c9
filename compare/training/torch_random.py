"""The torch twin's own random draws, seeded from the run's ``--seed`` and kept in its checkpoint.

``nn.Dropout`` draws its masks from torch's default generator (the CPU's, or the GPU's for a
tensor on CUDA), which the whole process shares. So the torch twin keeps the generators' states
of its own, :class:`TorchGenerators`, and puts them in place of the process's around each
training step, putting the process's back after: the same ``--seed`` gives the same masks, a
script's own ``torch.manual_seed`` is neither used nor changed by ``compare.fit``, and a
checkpoint holds where the twin's draws stand, so ``--resume`` continues them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import numpy as np
import torch

TORCH_SEED_KEY = 7
"""Joins ``--seed`` in the seed sequence of the torch twin's draws: ``[seed, 7]``."""


class TorchGenerators:
    """The states of torch's default generators for one twin on ``device``: the CPU's, and the
    current GPU's when ``device`` is CUDA; at first, as ``torch.manual_seed(torch_seed(seed))``
    leaves them.
    Entered (``with generators:``), they are the process's; on leaving, the twin's again. A twin
    that draws nothing (no Dropout: not ``used``) keeps none, and entering changes nothing."""

    def __init__(self, device: torch.device, seed: int, *, used: bool = True) -> None:
        self.devices = ["cpu", *(["cuda"] if device.type == "cuda" else [])] if used else []
        self.states = {name: torch.Generator(name).manual_seed(torch_seed(seed)).get_state()
                       for name in self.devices}
        self.outside: dict[str, torch.Tensor] = {}

    def __enter__(self) -> None:
        self.outside = process_states(self.devices)
        set_process_states(self.states)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.states = process_states(self.devices)
        set_process_states(self.outside)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Each generator's state (uint8 bytes) by device kind, ``cpu`` and ``cuda``."""
        return {name: state.numpy().copy() for name, state in self.states.items()}

    def load_state_dict(self, saved: Mapping[str, np.ndarray]) -> None:
        """Continue from ``saved`` (a :meth:`state_dict`), checked first (ValueError naming the
        entry). One for a device this twin does not run on is left out; a CUDA state missing
        from one written on the CPU starts from the seed."""
        if self.devices and "cpu" not in saved:
            raise ValueError("it holds no state of torch's CPU generator, which the Dropout "
                             "layers draw from (written before it was saved): the run cannot "
                             "continue exactly; start it again")
        for name in self.devices:
            if name in saved:
                self.states[name] = checked_state(name, saved[name], self.states[name])


def torch_seed(seed: int) -> int:
    """The 64-bit seed torch's generators start from for the run's ``seed`` (any size, drawn
    through NumPy's SeedSequence as the run's other seeds are: torch takes none over 2**64 - 1)."""
    return int(np.random.SeedSequence([seed, TORCH_SEED_KEY]).generate_state(1, np.uint64)[0])


def checked_state(name: str, saved: object, like: torch.Tensor) -> torch.Tensor:
    """``saved`` as a state of torch's ``name`` generator, of the shape and dtype of ``like``
    and one torch accepts (ValueError)."""
    if not (isinstance(saved, np.ndarray) and saved.dtype == np.uint8
            and saved.shape == tuple(like.shape)):
        found = (f"{saved.dtype} {saved.shape}" if isinstance(saved, np.ndarray)
                 else type(saved).__name__)
        raise ValueError(f"torch's {name} generator state should be {like.numel()} uint8 bytes, "
                         f"found {found}")
    state = torch.from_numpy(saved.copy())
    try:
        torch.Generator(name).set_state(state)
    except RuntimeError as error:
        raise ValueError(f"torch refuses its {name} generator state: "
                         f"{str(error).splitlines()[0]}") from None
    return state


def process_states(devices: list[str]) -> dict[str, torch.Tensor]:
    """The process's default generators' states (the current GPU's for ``cuda``)."""
    return {name: torch.get_rng_state() if name == "cpu" else torch.cuda.get_rng_state()
            for name in devices}


def set_process_states(states: Mapping[str, torch.Tensor]) -> None:
    for name, state in states.items():
        if name == "cpu":
            torch.set_rng_state(state)
        else:
            torch.cuda.set_rng_state(state)
