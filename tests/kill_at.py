"""Run ``compare`` and SIGKILL it at a chosen point: ``python kill_at.py MODULE ATTRIBUTE N
ARGS...`` kills the process just before the N-th call of ``MODULE.ATTRIBUTE`` (a function, or
``Class.method``), as a power cut or the OOM killer would: no handler, no clean-up runs."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any


def kill_before_call(module_name: str, attribute: str, call: int) -> None:
    module = importlib.import_module(module_name)
    owner_name, _, name = attribute.rpartition(".")
    owner = getattr(module, owner_name) if owner_name else module
    original = getattr(owner, name)
    calls = 0

    def dying(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, dying)


if __name__ == "__main__":
    kill_before_call(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    from compare import cli

    sys.exit(cli.main(sys.argv[4:]))
