"""Layers that split their own work across the cores: :func:`parallel_parts`.

:func:`parallel_parts` runs a function over contiguous parts of a batch on a small pool of threads,
one part per core, every product on one BLAS thread (:func:`numpyml_core.blas.blas_threads`). NumPy
releases the GIL in its copies, ufuncs and products, so the parts run side by side. Used by the
convolution and pooling layers: each part builds and multiplies the column matrices of its own samples
(measured here, a 64x32x32x32 3x3 convolution: 10 ms on two parts against 13 ms with OpenBLAS's own
two threads, whose split of a product with 32 columns sometimes gains nothing over one thread).
:func:`parallel_threads` is 1 inside a ``blas_threads(1)`` block (the ``sync`` strategy's share in
the training process), in worker processes started with one BLAS thread, and when the BLAS threads
cannot be limited (the parts would oversubscribe the cores) or OpenBLAS's idle threads spin long
(see :mod:`numpyml_core.blas`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from numpyml_core.plugin_api import (SHORT_WAIT, blas_thread_count, blas_thread_limit, blas_threads,
                                     can_limit_blas_threads, share_ranges)

__all__ = ["parallel_parts", "parallel_threads"]

T = TypeVar("T")


def parallel_threads() -> int:
    """How many parts :func:`parallel_parts` splits work into here: the cores this process may run
    on, at most the BLAS's thread count (``OPENBLAS_NUM_THREADS`` ...) and the enclosing
    :func:`blas_threads` limit; 1 when BLAS threads cannot be limited, or when OpenBLAS's idle
    threads busy-wait long enough to take a core from the parts (see :mod:`numpyml_core.blas`)."""
    if not can_limit_blas_threads() or not SHORT_WAIT:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    threads = blas_thread_count()
    if threads is not None:
        cores = min(cores, threads)
    limit = blas_thread_limit()
    return max(1, cores if limit is None else min(cores, limit))


_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] = (0, 0)
_pool_lock = threading.Lock()


def _executor(threads: int) -> ThreadPoolExecutor:
    """The shared pool with at least ``threads`` threads, made again in a forked child (whose copy
    of the pool has no threads)."""
    global _pool, _pool_key
    with _pool_lock:
        if _pool is None or _pool_key[0] != os.getpid() or _pool_key[1] < threads:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="numpyml-parts")
            _pool_key = (os.getpid(), threads)
        return _pool


def _one_blas_thread(function: Callable[..., T], *args: Any) -> T:
    with blas_threads(1):
        return function(*args)


def parallel_parts(function: Callable[[int, int, int], T], n: int, parts: int | None = None) -> list[T]:
    """``[function(k, start, stop) for k, (start, stop) in enumerate(share_ranges(n, parts))]``, the parts
    run concurrently (part 0 on the calling thread) with one BLAS thread each.

    ``parts`` defaults to :func:`parallel_threads`. The functions must write to disjoint memory
    (their own slices of a result, their own scratch buffers). Every part finishes before this
    returns, also when one raises; the first exception (in part order) is raised again."""
    bounds = share_ranges(n, parallel_threads() if parts is None else parts)
    if len(bounds) == 1:
        return [function(0, *bounds[0])]
    with blas_threads(1):  # encloses the parts' own blocks: see the module docstring
        pool = _executor(len(bounds) - 1)
        futures = [pool.submit(_one_blas_thread, function, k, *bounds[k]) for k in range(1, len(bounds))]
        results: list[Any] = []
        errors: list[BaseException] = []
        try:
            results.append(function(0, *bounds[0]))
        except BaseException as error:  # noqa: BLE001 - re-raised below, after the other parts
            errors.append(error)
            results.append(None)
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as error:  # noqa: BLE001
                errors.append(error)
                results.append(None)
        if errors:
            raise errors[0]
        return results
