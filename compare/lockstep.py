"""Optimizer lockstep: both twins, same start, same batches; how far apart are their weights?"""

from __future__ import annotations

import numpy as np

from compare import tolerance
from compare.arch import Architecture, parse_dtype
from compare.backend_scratch import ScratchBackend
from compare.backend_torch import TorchBackend
from compare.optimizers import OptimizerSpec
from compare.weights import scratch_to_torch


def optimizer_lockstep(
    arch: Architecture,
    optimizer: OptimizerSpec,
    *,
    steps: int,
    dtype: str = "float64",
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """Run ``steps`` optimizer steps in both twins from copied weights on the same random batches;
    return the weights' relative difference after every step."""
    model = arch.build_scratch(seed=seed, dtype=dtype)
    reference = arch.build_torch(dtype=dtype)
    scratch_to_torch(model, reference)
    rng = np.random.default_rng([seed, 2])
    x = rng.standard_normal((steps * batch_size, arch.widths[0])).astype(parse_dtype(dtype))
    y = rng.integers(0, arch.widths[-1], size=steps * batch_size)
    twins = [ScratchBackend(model, optimizer, x, y), TorchBackend(reference, optimizer, x, y)]
    for twin in twins:
        twin.start_epoch(np.arange(len(y)), steps)
    diffs = []
    for step in range(steps):
        for twin in twins:
            twin.train_step(step * batch_size, (step + 1) * batch_size)
        diffs.append(tolerance.weight_rel_diff(twins[0].weights(), twins[1].weights()))
    return diffs
