"""BLAS threads, and layers that split their own work across the cores.

:func:`blas_threads` limits NumPy's BLAS to ``n`` threads inside a ``with`` block, through
``openblas_set_num_threads_local`` in the OpenBLAS that NumPy's wheels bundle. With another BLAS (or
an OpenBLAS without that function) it does nothing: results are the same either way, only speed
differs. Despite its name, that OpenBLAS setting is process-wide in the bundled builds (measured: a
thread that sets 1 makes every other thread's products single-threaded until it is set back), so
blocks must not overlap in time across threads unless one block encloses the others, as
:func:`parallel_parts` does.

:func:`parallel_parts` runs a function over contiguous parts of a batch on a small pool of threads,
one part per core, every product on one BLAS thread. NumPy releases the GIL in its copies, ufuncs and
products, so the parts run side by side. Used by the convolution plugin: each part builds and
multiplies the column matrices of its own samples (measured here, a 64x32x32x32 3x3 convolution:
10 ms on two parts against 13 ms with OpenBLAS's own two threads, whose split of a product with 32
columns sometimes gains nothing over one thread). :func:`parallel_threads` is 1 inside a
``blas_threads(1)`` block (the ``sync`` strategy's share in the training process), in worker
processes started with one BLAS thread, and when the BLAS threads cannot be limited (the parts would
oversubscribe the cores).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, TypeVar

from ._openblas_env import SHORT_WAIT
from .arrays import split

T = TypeVar("T")


class _OpenBLAS:
    """The thread functions of the OpenBLAS NumPy bundles (``None`` where missing)."""

    def __init__(self) -> None:
        import ctypes
        import glob

        import numpy as np

        self.set_local: Any = None
        self.get_threads: Any = None
        folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
        for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
            try:
                library = ctypes.CDLL(path)
                setter = library.openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            setter.argtypes = [ctypes.c_int]
            setter.restype = ctypes.c_int
            self.set_local = setter
            for name in ("openblas_get_num_threads", "openblas_get_num_threads64_",
                         "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads"):
                getter = getattr(library, name, None)
                if getter is not None:
                    getter.restype = ctypes.c_int
                    self.get_threads = getter
                    break
            return


_blas: _OpenBLAS | None = None
_limits = threading.local()  # .limit: the innermost blas_threads(n) of this thread


def _openblas() -> _OpenBLAS:
    global _blas
    if _blas is None:
        _blas = _OpenBLAS()
    return _blas


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Within the block, BLAS calls use at most ``n`` threads (when supported)."""
    setter = _openblas().set_local
    outer = getattr(_limits, "limit", None)
    _limits.limit = int(n) if outer is None else min(int(n), outer)
    if setter is None:
        try:
            yield
        finally:
            _limits.limit = outer
        return
    previous = setter(_limits.limit)
    try:
        yield
    finally:
        setter(previous)
        _limits.limit = outer


def parallel_threads() -> int:
    """How many parts :func:`parallel_parts` splits work into here: the cores this process may run
    on, at most the BLAS's thread count (``OPENBLAS_NUM_THREADS`` ...) and the enclosing
    :func:`blas_threads` limit; 1 when BLAS threads cannot be limited, or when OpenBLAS's idle
    threads busy-wait long enough to take a core from the parts (see ``_openblas_env``)."""
    blas = _openblas()
    if blas.set_local is None or not SHORT_WAIT:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if blas.get_threads is not None:
        cores = min(cores, max(1, blas.get_threads()))
    limit = getattr(_limits, "limit", None)
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
    """``[function(k, start, stop) for k, (start, stop) in enumerate(split(n, parts))]``, the parts
    run concurrently (part 0 on the calling thread) with one BLAS thread each.

    ``parts`` defaults to :func:`parallel_threads`. The functions must write to disjoint memory
    (their own slices of a result, their own scratch buffers). Every part finishes before this
    returns, also when one raises; the first exception (in part order) is raised again."""
    bounds = split(n, parallel_threads() if parts is None else parts)
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
