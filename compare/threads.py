"""The BLAS thread policy of the scratch twin, chosen by batch size.

Measured on the 2-core machine this project targets: for batches of 64 and below a matrix product
is too small to split, and OpenBLAS with 2 threads is slower than with 1 (the threads spend more
time waking and synchronising than multiplying); from 128 up, 2 threads win.
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
