"""What every command shares: the parser that reports in one line, flag types, network flags."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from compare.data.files import NUM_CLASSES
from compare.errors import UserError
from compare.harness.arch import (
    DEFAULT_INIT_STD,
    INIT_CHOICES,
    LAYER_FIELDS,
    NORM_CHOICES,
    Architecture,
    parse_dtype,
)
from compare.layers import ACTIVATIONS, Setting

DEFAULT_DATA_DIR = "data"
"""Where ``--data-dir`` points when left out (for MNIST and Fashion-MNIST)."""


class UsageError(UserError):
    """Bad arguments or input data: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """Reports a bad command line as a UsageError, and keeps the option strings of its flags
    (``options``: each one's first, ``--epochs``, by every spelling of it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.options: dict[str, str] = {}  # before the parser adds its --help
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        for spelling in action.option_strings:
            self.options[spelling] = action.option_strings[0]
        return action

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _whole_number(text: str, minimum: int, wanted: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "a whole number >= 0")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    return value if math.isfinite(value) else math.nan


def positive_float(text: str) -> float:
    if not _finite(text) > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return float(text)


def non_negative_float(text: str) -> float:
    if not _finite(text) >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return float(text)


def momentum_factor(text: str) -> float:
    if not 0 <= _finite(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return float(text)


MAX_RUN_NAME = 200


def run_name(text: str) -> str:
    """A folder name inside --logdir: no path separators, not '.' or '..', no control
    characters (a newline, a terminal escape), valid UTF-8, not too long."""
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a folder name inside --logdir (no '/', not '.' or '..')")
    check_path("--run-name", text)
    if not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"{text!r}: control characters (a newline, a terminal escape...) are not allowed")
    if len(text.encode()) > MAX_RUN_NAME:
        raise argparse.ArgumentTypeError(
            f"is {len(text.encode())} bytes long; at most {MAX_RUN_NAME}")
    return text


def printable(text: str) -> str:
    """``text`` with each control or unprintable character (a newline, a terminal escape, a
    byte of a name that is not UTF-8) written as its backslash escape."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in text)


def check_path(flag: str, path: str) -> None:
    """A path flag's value must be valid UTF-8 and hold no control characters: it is printed
    (a terminal escape would act on the terminal), and saved in JSON and logs."""
    try:
        path.encode()
    except UnicodeEncodeError:
        raise UsageError(f"{flag} {printable(path)}: the name is not valid UTF-8; rename the "
                         "folder or choose another") from None
    if not path.isprintable():
        raise UsageError(f"{flag} {printable(path)}: the name holds control characters (a "
                         "newline, a terminal escape...); rename the folder or choose another")


def check_logdir(logdir: str) -> None:
    """``--logdir`` must be a folder, or not exist yet; and be valid UTF-8."""
    check_path("--logdir", logdir)
    path = Path(logdir)
    if path.is_symlink() and not path.exists():
        raise UsageError(f"--logdir {printable(logdir)}: is a symbolic link to "
                         f"{printable(os.readlink(path))}, which does not exist")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--logdir {printable(logdir)}: is a file, not a folder")


def given(parser: Parser, argv: list[str]) -> list[str]:
    """The flags on the command line ``argv`` of ``parser``'s command, as ``--name``, whatever
    their values (a flag given with its default value counts as given). A flag may be
    abbreviated, or joined to its value by ``=``, as argparse allows; ``--`` ends the flags."""
    found = set()
    for word in argv[: argv.index("--") if "--" in argv else len(argv)]:
        option = word.partition("=")[0]
        if not option.startswith("--"):
            continue
        spelled = {first for spelling, first in parser.options.items()
                   if spelling == option} or {first for spelling, first in
                                               parser.options.items()
                                               if spelling.startswith(option)}
        found |= spelled if len(spelled) == 1 else set()
    return [first for first in dict.fromkeys(parser.options.values())
            if first in found and first not in ("-h", "--debug")]


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers joined by ',', got {text!r}")
    return values


def add_network_flags(parser: argparse.ArgumentParser, *, dtype: str, layer_lists: bool = False
                      ) -> None:
    """--arch, --activation and its settings, the layer flags (with ``layer_lists``, --norm and
    --dropout take several values joined by ',', as text), --dtype, --seed."""
    parser.add_argument("--arch", default="784-128-64-10",
                        help="layer widths, input first and classes last (default %(default)s)")
    parser.add_argument("--activation", default="relu",
                        help=f"the hidden layers' activation: {', '.join(ACTIVATIONS)} "
                             "(default %(default)s)")
    for setting, kinds in activation_settings().items():
        parser.add_argument(setting.flag, type=float, default=None, metavar="X",
                            help=f"{setting.help}, for --activation {' or '.join(kinds)} "
                                 f"(default {setting.default:g})")
    add_layer_flags(parser, layer_lists=layer_lists)
    parser.add_argument("--dtype", default=dtype, help="float32 or float64 (default %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="fixes every random draw (%(default)s)")


def add_layer_flags(parser: argparse.ArgumentParser, *, layer_lists: bool = False) -> None:
    """--norm, --dropout, --init and --init-std: what goes between the Linear layers besides the
    activation, and how the weights are drawn; with ``layer_lists``, --norm and --dropout are text
    that may join several values by ','."""
    several = " (several joined by ',')" if layer_lists else ""
    parser.add_argument("--norm", default="none",
                        help=f"a normalization after every hidden Linear: "
                             f"{', '.join(NORM_CHOICES)}{several} (default %(default)s)")
    parser.add_argument("--dropout", type=str if layer_lists else float,
                        default="0" if layer_lists else 0.0,
                        metavar="P", help=f"Dropout(P) after every hidden activation, P in [0, 1]"
                                          f"{several} (default 0: none)")
    parser.add_argument("--init", default="torch",
                        help=f"how the weights are drawn: {', '.join(INIT_CHOICES)} (default "
                             "%(default)s: as nn.Linear draws them)")
    parser.add_argument("--init-std", type=float, default=None, metavar="STD",
                        help=f"the std of --init normal (default {DEFAULT_INIT_STD:g})")


def activation_settings() -> dict[Setting, list[str]]:
    """Every setting of an activation in the layer table, and the activations that have it."""
    found: dict[Setting, list[str]] = {}
    for kind in ACTIVATIONS.values():
        for setting in kind.settings:
            found.setdefault(setting, []).append(kind.name)
    return found


def architecture(args: argparse.Namespace) -> Architecture:
    """The network the flags describe (``--arch``, ``--activation`` and its settings'
    flags, ``--norm``, ``--dropout``, ``--init``, ``--init-std``; ``--dtype`` checked)."""
    parse_dtype(args.dtype)
    given = {}
    for setting, kinds in activation_settings().items():
        value = getattr(args, setting.name)
        if value is None:
            continue
        if args.activation not in kinds:
            raise UsageError(f"{setting.flag}: a setting of --activation {' or '.join(kinds)}, "
                             f"not of {args.activation}")
        try:
            given[setting.name] = setting.check(value)
        except ValueError as error:
            raise UsageError(f"{setting.flag} {value!r}: {error}") from None
    return replace(Architecture.parse(args.arch, args.activation, given),
                   **{name: getattr(args, name) for name in LAYER_FIELDS})


def strict_json(value: object) -> str:
    """``value`` as strict JSON: a non-finite float (an infinite relative error, say) is null."""
    def finite(item: object) -> object:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: finite(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [finite(inner) for inner in item]
        return item

    return json.dumps(finite(value), allow_nan=False)


def output(args: argparse.Namespace) -> TextIO:
    """Where progress lines go: stderr when stdout carries ``--json``."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def classifier(args: argparse.Namespace) -> Architecture:
    """:func:`architecture`, checked to end in one output per digit class."""
    arch = architecture(args)
    if arch.widths[-1] != NUM_CLASSES:
        raise UsageError(f"--arch {arch.spec}: the last width must be the number of classes, "
                         f"{NUM_CLASSES}")
    return arch


def check_input_width(arch: Architecture, features: int, dataset: str) -> None:
    if features != arch.widths[0]:
        raise UsageError(f"--arch {arch.spec}: the input width must be the image size "
                         f"{features} of {dataset}")


def resolve_device(requested: str) -> str:
    """cpu, cuda or auto (cuda when available); imports torch."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: CUDA is not available to this torch {torch.__version__} "
                         "(no GPU or driver); use --device cpu or auto")
    return requested
