"""python -m compare (or mlp-twins) {parity,train,evaluate,bench,lesson}

Exit status: 0 on success; 1 when a check fails, a run diverges or a bug is hit; 2 on bad
arguments, data, checkpoints or folders, or a torch that cannot be imported; 130 on Ctrl-C.
Every failure is one line on stderr naming the flag, file or checkpoint (--debug adds the
traceback and shows warnings).
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from compare.cli import bench, evaluate, lesson, parity, train
from compare.cli.flags import Parser, printable
from compare.cli.streams import safe_streams
from compare.errors import CheckError, InterruptionError, UserError

SCRIPT = "mlp-twins"
"""The console script's name (``[project.scripts]`` in pyproject.toml)."""


def program_name() -> str:
    """``mlp-twins`` when run as that console script, ``compare`` otherwise (``python -m
    compare``, or ``main`` called from other code)."""
    return SCRIPT if sys.argv and Path(sys.argv[0]).name == SCRIPT else "compare"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=program_name(), description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in (parity, train, evaluate, bench, lesson):
        command.add_parser(commands)
    for command_parser in commands.choices.values():
        command_parser.add_argument("--debug", action="store_true",
                                    help="show the traceback of an error, and warnings")
    return parser


def explain(error: BaseException) -> tuple[str, int]:
    """(what to say, the exit status) for an error that ended a command."""
    if isinstance(error, KeyboardInterrupt):
        return "Ctrl-C", InterruptionError.exit_status
    if torch_import_failed(error):
        return f"torch cannot be imported: {type(error).__name__}: {error}", 2
    if isinstance(error, UserError | CheckError | InterruptionError):
        return str(error), error.exit_status
    if isinstance(error, MemoryError):
        return f"out of memory ({error or 'an array did not fit'}); try smaller sizes", 2
    if isinstance(error, OSError):
        where = f"{os.fsdecode(error.filename)}: " if error.filename else ""
        reason = error.strerror or errno.errorcode.get(error.errno or 0) or str(error)
        return f"{where}{reason}", 2
    return (f"internal error: {type(error).__name__}: {error} (run again with --debug for the "
            "traceback)"), 1


def torch_import_failed(error: BaseException) -> bool:
    """Whether ``error`` ended an ``import torch``: torch missing, or its own import code (its
    modules' top level: a broken install, a shared library that does not load, no memory)."""
    if isinstance(error, ImportError) and (error.name or "").partition(".")[0] == "torch":
        return True
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(spec.submodule_search_locations[0])
    return any(frame.name == "<module>" and Path(frame.filename).is_relative_to(folder)
               for frame in traceback.extract_tb(error.__traceback__))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; never let a traceback or a warning reach the user without ``--debug``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    thread_errors = threading.excepthook
    if not debug:  # a download thread's error is raised again in the main thread
        threading.excepthook = lambda _: None
    try:
        with (safe_streams(), warnings.catch_warnings(),
              np.errstate(all="warn" if debug else "ignore")):
            if not debug:
                warnings.simplefilter("ignore")
            args = build_parser().parse_args(argv)
            args.argv = argv[argv.index(args.command) + 1:]
            return args.run(args)
    except (Exception, KeyboardInterrupt) as error:
        if debug:
            traceback.print_exc()
        text, status = explain(error)
        kind = "interrupted" if status == InterruptionError.exit_status else "error"
        with safe_streams():
            print(f"{kind}: {printable(text.strip() or type(error).__name__)}", file=sys.stderr)
        return status
    finally:
        threading.excepthook = thread_errors
