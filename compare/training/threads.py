"""The BLAS thread policy of the scratch twin: one thread for small batches, every core above.

Small products gain little from a second thread, and the NumPy work between them runs slower with
two (the README's speed section has the measurements). Torch keeps its own default.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from threadpoolctl import threadpool_limits

SINGLE_THREAD_MAX_BATCH = 64


def blas_threads_for(batch_size: int) -> int:
    return 1 if batch_size <= SINGLE_THREAD_MAX_BATCH else (os.cpu_count() or 1)


def blas_thread_policy(batch_size: int) -> AbstractContextManager:
    """Limit NumPy's BLAS to the policy's thread count while the block runs."""
    return threadpool_limits(limits=blas_threads_for(batch_size), user_api="blas")
