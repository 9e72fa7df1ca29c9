"""The BLAS thread policy of the scratch twin: one thread for small batches, every core above.

Small products gain little from a second thread, and the NumPy work between them runs slower with
two (the README's speed section has the measurements). Torch keeps its own default.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from threadpoolctl import threadpool_limits

SINGLE_THREAD_MAX_BATCH = 64


def blas_threads_for(batch_size: int) -> int:
    return 1 if batch_size <= SINGLE_THREAD_MAX_BATCH else (os.cpu_count() or 1)


def blas_thread_policy(batch_size: int) -> AbstractContextManager:
    """Limit NumPy's BLAS to the policy's thread count while the block runs."""
    return threadpool_limits(limits=blas_threads_for(batch_size), user_api="blas")


@contextmanager
def one_thread() -> Iterator[None]:
    """NumPy's BLAS and torch (when imported) on one thread while the block runs: for networks
    so small (tens of units) that sharing each product costs more than it saves; on a busy
    2-core machine a 2-64-64-2 step on 1,776 points took 6 ms on one thread, 100 ms on two."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    with threadpool_limits(limits=1, user_api="blas"):
        if torch:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(before)
