"""The harness that knows both twins: weight copying, parity checks, training, TensorBoard, CLI.

What a script needs, as ``compare.NAME``::

    data = compare.load_data("mnist-sample")         # Splits: train_x (N, 784), train_y (N,)...
    model, twin = compare.build_twins("784-128-10")  # scratch and torch, identical weights
    print(compare.check_parity("784-128-10").table())
    compare.check_layer(scratch_layer, torch_module, x)
    config = compare.TrainConfig(compare.Architecture.parse("784-128-10"), epochs=2)
    history = compare.fit(data, config)              # both twins trained, side by side
    history["torch"].test.accuracy                   # a History per twin; nothing written
    report = compare.run_lesson("straight-line")     # a lesson: its verdict and pictures

Each name is imported when first used, so ``import compare`` imports neither torch nor the rest
of the harness. A bad argument raises a :class:`UserError` with the one-line message the command
line prints; a training run that stops raises a :class:`TrainingError` (a
:class:`DivergenceError` when a loss or a weight stops being finite).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compare.api import (
        Twins,
        build_twins,
        check_parity,
        load_data,
        neuron_picture,
        run_lesson,
    )
    from compare.data import Splits
    from compare.errors import ArgumentError, CheckError, UserError
    from compare.harness.arch import Architecture
    from compare.harness.check_layer import check_layer
    from compare.harness.parity import ParityReport
    from compare.harness.report import LayerCheckError, LayerReport
    from compare.lessons.base import LessonReport
    from compare.training.config import SettingsError, TrainConfig
    from compare.training.divergence import DivergenceError, TrainingError
    from compare.training.fit import fit
    from compare.training.history import History
    from compare.training.optimizers import OptimizerSpec

EXPORTS: dict[str, str] = {
    "load_data": "compare.api",
    "build_twins": "compare.api",
    "check_parity": "compare.api",
    "neuron_picture": "compare.api",
    "run_lesson": "compare.api",
    "check_layer": "compare.harness.check_layer",
    "fit": "compare.training.fit",
    "TrainConfig": "compare.training.config",
    "OptimizerSpec": "compare.training.optimizers",
    "History": "compare.training.history",
    "Architecture": "compare.harness.arch",
    "Splits": "compare.data",
    "Twins": "compare.api",
    "ParityReport": "compare.harness.parity",
    "LayerReport": "compare.harness.report",
    "LessonReport": "compare.lessons.base",
    "UserError": "compare.errors",
    "ArgumentError": "compare.errors",
    "CheckError": "compare.errors",
    "LayerCheckError": "compare.harness.report",
    "SettingsError": "compare.training.config",
    "TrainingError": "compare.training.divergence",
    "DivergenceError": "compare.training.divergence",
}
"""Each name of ``__all__`` -> the module that defines it."""

__all__ = [
    "Architecture",
    "ArgumentError",
    "CheckError",
    "DivergenceError",
    "History",
    "LayerCheckError",
    "LayerReport",
    "LessonReport",
    "OptimizerSpec",
    "ParityReport",
    "SettingsError",
    "Splits",
    "TrainConfig",
    "TrainingError",
    "Twins",
    "UserError",
    "build_twins",
    "check_layer",
    "check_parity",
    "fit",
    "load_data",
    "neuron_picture",
    "run_lesson",
]


def __getattr__(name: str) -> object:
    """``compare.NAME`` for a name of :data:`EXPORTS`, imported on first use; AttributeError
    for any other name, and for one whose module this version does not have yet."""
    module_name = EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'compare' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise AttributeError(f"compare.{name} is not in this version of compare (it needs "
                             f"{module_name}, which is not here yet)") from None
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})
