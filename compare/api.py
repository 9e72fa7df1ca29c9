"""What a script calls: the data, a pair of twins, the parity proof; :mod:`compare` exports them.

Each function checks its arguments first and refuses a bad one with the one-line message the
command line prints (a :class:`compare.errors.UserError`), before any work starts. None of them
writes to disk, except :func:`load_data` when asked to download and :func:`run_lesson` when
given a folder to keep its runs in.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from compare.cli.flags import DEFAULT_DATA_DIR, resolve_device
from compare.data import DATASETS, SAMPLE, Splits, load_splits
from compare.data.files import SAMPLE_DIR, DataNotFoundError
from compare.errors import ArgumentError, check_whole_number
from compare.harness.arch import Architecture, parse_dtype
from compare.memory import Footprint, check_fits

if TYPE_CHECKING:
    from torch import nn

    import scratch
    from compare.harness.parity import ParityReport
    from compare.lessons.base import Lesson, LessonReport

DEVICES = ("cpu", "cuda", "auto")
BACKENDS = {"scratch": ["scratch"], "torch": ["torch"], "both": ["scratch", "torch"]}
DEFAULT_ARCH = "784-128-64-10"


class Twins(NamedTuple):
    """The two networks of one architecture, holding identical weights (unpacks as a pair)."""

    scratch: scratch.Sequential
    torch: nn.Sequential


def data_source(source: str | os.PathLike[str], download: bool) -> tuple[Path, str]:
    """(folder to read, dataset name) for ``source``: a dataset name (the bundled sample, or
    MNIST / Fashion-MNIST in ``data/`` as ``compare train`` keeps them) or a folder."""
    names = ", ".join(DATASETS)
    if isinstance(source, str) and source in DATASETS:
        return (SAMPLE_DIR if source == SAMPLE else Path(DEFAULT_DATA_DIR)), source
    if not isinstance(source, str | os.PathLike):
        raise ArgumentError(f"load_data: source must be a dataset name ({names}) or a folder, "
                            f"got {type(source).__name__}")
    folder = Path(source)
    if not folder.is_dir():
        raise ArgumentError(f"load_data: {os.fspath(source)!r} is neither a dataset name "
                            f"({names}) nor a folder")
    if download:
        raise ArgumentError("load_data: download=True fetches a dataset by name ('mnist' or "
                            f"'fashion-mnist') into {DEFAULT_DATA_DIR}/; a folder is read as "
                            "it is")
    fashion = folder / DATASETS["fashion-mnist"] / "raw"
    return folder, "fashion-mnist" if fashion.is_dir() else "mnist"


def load_data(source: str | os.PathLike[str] = SAMPLE, *, download: bool = False,
              val_size: int | None = None, seed: int = 0, dtype: str = "float32") -> Splits:
    """A dataset as normalized train / validation / test splits, as ``compare train`` loads it.

    Args:
        source: ``"mnist-sample"`` (bundled: 10,000 training and 2,000 test digits, offline),
            ``"mnist"`` or ``"fashion-mnist"`` (their IDX files in ``data/`` under the current
            folder, or in its ``MNIST/raw/`` / ``FashionMNIST/raw/``), or a folder holding the
            four IDX files (``.gz`` or not; or a torchvision root holding them in ``MNIST/raw/``):
            a ``Path`` is always a folder, even one named like a dataset.
        download: fetch a named dataset's missing files into ``data/<MNIST|FashionMNIST>/raw/``
            (the only thing this writes); a folder is never downloaded into.
        val_size: validation images carved from the training file (default 5000, or 10% of a
            file of fewer than 50,000); 0 keeps them all for training.
        seed: picks the validation images.
        dtype: ``"float32"`` or ``"float64"``, the x arrays' dtype.

    Returns:
        :class:`~compare.data.Splits`: ``train_x`` (N_train, 784), ``train_y`` (N_train,) int64,
        likewise ``val_x`` / ``val_y`` and ``test_x`` / ``test_y``; pixels as
        ``(x / 255 - mean) / std`` with the training split's ``mean`` and ``std``.

    Raises:
        UserError: a bad argument, or files missing or malformed (the message names them).
    """
    if not isinstance(download, bool):
        raise ArgumentError(f"load_data: download must be True or False, got {download!r}")
    if val_size is not None:
        check_whole_number("val_size", val_size, 0)
    check_whole_number("seed", seed, 0)
    float_dtype = parse_dtype(dtype)
    folder, dataset = data_source(source, download)
    try:
        return load_splits(folder, dataset, val_size=val_size, seed=seed, dtype=float_dtype,
                           download_missing=download)
    except DataNotFoundError as error:
        if download or source not in DATASETS:
            raise
        raise DataNotFoundError(f"{error}; load_data({source!r}, download=True) fetches them "
                                f"into {DEFAULT_DATA_DIR}/{DATASETS[source]}/raw/") from None


def architecture(arch: Architecture | str | Sequence[int], activation: str | None,
                 settings: Mapping[str, float] | None) -> Architecture:
    """The network ``arch`` describes: an Architecture as it is, or widths (``"784-128-10"`` or
    ``(784, 128, 10)``) with ``activation`` (default relu) and its ``settings``."""
    if isinstance(arch, Architecture):
        if activation is not None or settings:
            raise ArgumentError(f"arch is an Architecture with its own activation "
                                f"({arch.activation_label}): leave out activation and settings")
        return arch
    if isinstance(arch, list | tuple) and not any(isinstance(w, bool) or not isinstance(w, int)
                                                  for w in arch):
        arch = "-".join(str(width) for width in arch)
    if not isinstance(arch, str):
        raise ArgumentError(f"arch must be an Architecture, a string like '784-128-10' or a "
                            f"tuple of int widths, got {arch!r}")
    return Architecture.parse(arch, activation or "relu", settings)


def build_twins(arch: Architecture | str | Sequence[int] = DEFAULT_ARCH,
                activation: str | None = None, *, settings: Mapping[str, float] | None = None,
                seed: int = 0, dtype: str = "float32", device: str = "cpu") -> Twins:
    """Two networks of one architecture holding identical weights: scratch draws them from
    ``seed`` as ``nn.Linear`` draws (or by an Architecture's ``init`` scheme), and they are
    copied into the torch network.

    Args:
        arch: an :class:`~compare.harness.arch.Architecture`, or layer widths, input first and
            classes last: ``"784-128-10"`` or ``(784, 128, 10)``.
        activation: the hidden layers' activation for widths: relu (default), sigmoid, tanh,
            leaky_relu, none.
        settings: the activation's settings, e.g. ``{"negative_slope": 0.1}`` for leaky_relu.
        seed: the initial weights' draw.
        dtype: ``"float32"`` or ``"float64"``.
        device: the torch network's: ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Returns:
        :class:`Twins` ``(scratch, torch)``: ``Linear, act, ..., Linear, Softmax`` each, taking
        x (N, widths[0]) to probabilities (N, widths[-1]).
    """
    network = architecture(arch, activation, settings)
    check_whole_number("seed", seed, 0)
    itemsize = parse_dtype(dtype)().itemsize
    if device not in DEVICES:
        raise ArgumentError(f"device {device!r}: choose from {', '.join(DEVICES)}")
    check_fits(Footprint(network.widths, itemsize, networks=2, arrays_per_parameter=2),
               "building both twins")
    from compare.harness.twins import build_twins as build_pair

    return Twins(*build_pair(network, seed=seed, dtype=dtype, device=resolve_device(device)))


def check_parity(arch: Architecture | str | Sequence[int] = DEFAULT_ARCH,
                 activation: str | None = None, *, settings: Mapping[str, float] | None = None,
                 dtype: str = "float64", batch_size: int = 32, seed: int = 0) -> ParityReport:
    """``compare parity`` as a function: build both twins from ``seed`` and compare, layer by
    layer, one random batch x (``batch_size``, widths[0]): forward outputs, gradients for a
    random upstream gradient and for cross-entropy, and scratch's gradients against finite
    differences. ``arch``, ``activation`` and ``settings`` as :func:`build_twins` takes them.

    Returns:
        The report: ``.ok`` (every row within tolerance), ``.rows``, ``.max_rel_error``,
        ``.table()`` (the text ``compare parity`` prints), ``.to_json()``.
    """
    network = architecture(arch, activation, settings)
    check_whole_number("batch_size", batch_size, 1)
    check_whole_number("seed", seed, 0)
    from compare.harness.parity import parity_footprint, run_parity

    check_fits(parity_footprint(network, dtype, batch_size), "comparing both twins")

    return run_parity(network, dtype=dtype, batch_size=batch_size, seed=seed)


def neuron_picture(weight: object, *, count: int = 16, scale: int = 3) -> bytes:
    """PNG bytes of the first ``count`` neurons of a first layer, ``weight`` (neurons, pixels) in
    PyTorch's layout (scratch's ``W.T``): each neuron's weights as a square tile, red positive and
    blue negative, scaled by its own largest |w|, drawn ``scale`` times larger (what
    ``Neurons/first_layer`` shows in TensorBoard)."""
    import numpy as np

    from compare.insight.images import diverging_palette, neuron_tiles, png

    check_whole_number("count", count, 1)
    check_whole_number("scale", scale, 1)
    if not isinstance(weight, np.ndarray) or weight.ndim != 2 or weight.size == 0:
        raise ArgumentError(f"weight must be a 2-D array (neurons, pixels), got "
                            f"{getattr(weight, 'shape', type(weight).__name__)}")
    tiles = neuron_tiles(np.asarray(weight, np.float64), count=count)
    if tiles is None:
        raise ArgumentError(f"weight: its {weight.shape[1]} inputs are not a square image")
    return png(tiles.repeat(scale, axis=0).repeat(scale, axis=1), diverging_palette())


def check_lesson_arguments(name: object, backend: object, seed: object, logdir: object
                           ) -> Lesson:
    """The lesson ``name``, once :func:`run_lesson`'s other arguments are ones it can take
    (ArgumentError naming the first that is not)."""
    from compare.lessons import LESSONS

    if not isinstance(name, str) or name not in LESSONS:
        raise ArgumentError(f"lesson {name!r}: choose one of {', '.join(LESSONS)}")
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ArgumentError(f"backend {backend!r}: choose from {', '.join(BACKENDS)}")
    check_whole_number("seed", seed, 0)
    if not (logdir is None or isinstance(logdir, str | os.PathLike)):
        raise ArgumentError(f"logdir must be a folder or None, got {type(logdir).__name__}")
    if logdir is not None and Path(logdir).exists() and not Path(logdir).is_dir():
        raise ArgumentError(f"logdir {os.fspath(logdir)!r}: is a file, not a folder")
    return LESSONS[name]


def run_lesson(name: str, source: str | os.PathLike[str] = SAMPLE, *, backend: str = "both",
               seed: int = 0, logdir: str | os.PathLike[str] | None = None,
               log: Callable[[str], None] | None = None) -> LessonReport:
    """``compare lesson NAME`` as a function: train the lesson's configurations with each twin
    and compute its verdict.

    Args:
        name: a lesson, as ``compare lesson --list`` names them (``"pattern-detector"``,
            ``"straight-line"``...).
        source: the data, as :func:`load_data` takes it (never downloaded); a lesson with a
            problem of its own (``neuron-vs-layer``) reads none.
        backend: ``"scratch"``, ``"torch"`` or ``"both"``.
        seed: every draw: the validation images, the initial weights, the batches.
        logdir: the folder ``--logdir`` names: the runs go to ``logdir/lesson-NAME/`` with the
            pictures beside them. None: a temporary folder, removed before this returns (nothing
            is written; ``report.runs`` is None).
        log: takes the progress lines (None: they are dropped).

    Returns:
        The report: ``.holds`` and ``.verdict``, ``.reason``, ``.rows`` (the figures per
        configuration and twin), ``.table()`` (what the command prints), ``.to_json()``, and
        ``.pictures``: file name -> PNG bytes (``templates-torch.png``...).
    """
    from compare.lessons import runner
    from compare.lessons.base import LessonContext

    lesson = check_lesson_arguments(name, backend, seed, logdir)
    _, dataset = data_source(source, download=False)
    splits = load_data(source, seed=seed, dtype=lesson.dtype) if lesson.uses_data else None

    def teach(folder: str | os.PathLike[str]) -> LessonReport:
        return runner.teach(lesson, LessonContext(name, BACKENDS[backend], splits, dataset,
                                                  Path(folder), seed,
                                                  log=log or (lambda line: None)))

    if logdir is not None:
        return teach(logdir)
    with tempfile.TemporaryDirectory() as folder:
        return dataclasses.replace(teach(folder), runs=None)
