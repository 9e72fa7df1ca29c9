"""The BLAS thread policy of the scratch twin, chosen by batch size.

On the 2-core machine this project targets (784-128-64-10, one Fashion-MNIST epoch, median of 6
runs alternating 1 and 2 OpenBLAS threads in one process, seconds with 1 / 2 threads):

- quiet spells: batch 16: 0.80 / 1.16, 32: 0.57 / 0.50, 64: 0.44 / 0.37, 128: 0.38 / 0.31,
  256: 0.37 / 0.24;
- busy spells (other tenants on the host): 32: 0.65 / 0.62, 128: 0.45 / 0.78, 256: 0.42 / 0.47.

Two threads help a little at batch 32 and 64 when the machine is quiet and can lose badly when it
is not. They also slow the NumPy work between products (gather, loss, optimizer measured 1.5-2x
slower than with one thread; a busy loop on the other core did not slow NumPy, so the likely cause
is that half of each product's output sits in the other core's cache). From batch 128 up the
products are large enough to be worth it. So: one thread up to 64 rows, every core above.

Torch keeps its own default (every core): one thread was slower for it at every batch size from
32 to 256.
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
