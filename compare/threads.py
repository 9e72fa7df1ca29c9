"""The BLAS thread policy of the scratch twin, chosen by batch size.

Measured on the 2-core machine this project targets (784-128-64-10, one Fashion-MNIST epoch, median
of 6 alternating runs, seconds with 1 / 2 OpenBLAS threads): batch 8: 0.98 / 0.99, 16: 0.80 / 1.16,
32: 0.57 / 0.50, 64: 0.44 / 0.37, 128: 0.38 / 0.31, 256: 0.37 / 0.24. Below about 32 rows a product
is too small to split and the threads spend more time waking and synchronising than multiplying;
from 32 up every core wins. Torch keeps its own default (every core): one thread was slower for it
at every batch size from 32 to 256.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from threadpoolctl import threadpool_limits

SINGLE_THREAD_MAX_BATCH = 16


def blas_threads_for(batch_size: int) -> int:
    return 1 if batch_size <= SINGLE_THREAD_MAX_BATCH else (os.cpu_count() or 1)


def blas_thread_policy(batch_size: int) -> AbstractContextManager:
    """Limit NumPy's BLAS to the policy's thread count while the block runs."""
    return threadpool_limits(limits=blas_threads_for(batch_size), user_api="blas")
