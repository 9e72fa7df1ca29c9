"""What every command shares: the parser that reports in one line, flag types, network flags."""

from __future__ import annotations

import argparse
from typing import NoReturn

from compare.harness.arch import Architecture, parse_dtype


class UsageError(Exception):
    """Bad arguments or input data: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers joined by ',', got {text!r}")
    return values


def add_network_flags(parser: argparse.ArgumentParser, *, dtype: str) -> None:
    parser.add_argument("--arch", default="784-128-64-10",
                        help="layer widths, input first and classes last (default %(default)s)")
    parser.add_argument("--activation", default="relu", help="relu, sigmoid or tanh (%(default)s)")
    parser.add_argument("--dtype", default=dtype, help="float32 or float64 (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="fixes every random draw (%(default)s)")


def architecture(args: argparse.Namespace) -> Architecture:
    """The network the flags describe (``--arch``, ``--activation``, ``--dtype`` checked)."""
    parse_dtype(args.dtype)
    return Architecture.parse(args.arch, args.activation)


def resolve_device(requested: str) -> str:
    """cpu, cuda or auto (cuda when available); imports torch."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: CUDA is not available to this torch {torch.__version__} "
                         "(no GPU or driver); use --device cpu or auto")
    return requested
