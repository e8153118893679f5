"""Layers that split their own work across the cores: :func:`parallel_parts`, the BLAS threads, and huge
pages under OpenBLAS's work buffers (:func:`advise_huge_pages`).

:func:`parallel_parts` runs a function over contiguous parts of a batch on a small pool of threads,
one part per core, every product on one BLAS thread (also when there is only one part: OpenBLAS's
own threads are never woken, so none is left busy-waiting, ``OPENBLAS_THREAD_TIMEOUT`` = 2^28 cycles
by default, while the parts compute, and what the user imported first does not matter). NumPy releases the GIL in its copies, ufuncs
and products, so the parts run side by side. Used by the convolution and pooling layers: each part
builds and multiplies the column matrices of its own samples (measured here, a 64x32x32x32 3x3
convolution: 10 ms on two parts against 13 ms with OpenBLAS's own two threads, whose split of a
product with 32 columns sometimes gains nothing over one thread).

The BLAS threads are read and limited through `threadpoolctl <https://github.com/joblib/threadpoolctl>`_
(the scikit-learn team's library for this; OpenBLAS, MKL, BLIS), one controller per process, made
when first needed (after NumPy has loaded its BLAS), so nothing depends on what was imported first.
:func:`parallel_threads` is the number of cores this process may use, at most the BLAS's current
thread count: 1 in worker processes started with ``OPENBLAS_NUM_THREADS=1``, inside the ``sync``
strategy's one-thread block (it limits the BLAS with threadpoolctl too) and inside a part.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import numpy as np  # noqa: F401 - loaded before the controller looks for NumPy's BLAS
from threadpoolctl import ThreadpoolController

from numpyml_core.plugin_api import share_ranges

__all__ = ["advise_huge_pages", "blas_thread_count", "one_blas_thread", "parallel_parts", "parallel_threads"]

T = TypeVar("T")


@functools.cache
def _thread_controls() -> tuple[tuple[Callable[[], int], Callable[[int], Any]], ...]:
    """``(get, set)`` of the thread count of each BLAS library loaded in this process (NumPy's), found by
    threadpoolctl: OpenBLAS's own C functions where threadpoolctl finds them (about 1 us a call, against 3-5
    through its methods), else the controller's methods. The same as
    ``numpyml_layers._util._thread_controls``."""
    controls = []
    for library in ThreadpoolController().lib_controllers:
        if library.user_api != "blas":
            continue
        symbol = getattr(library, "_get_symbol", None)  # threadpoolctl's lookup of OpenBLAS's prefixed names
        get = set_ = None
        if library.internal_api == "openblas" and library.threading_layer == "pthreads" and callable(symbol):
            get, set_ = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
        if get is None or set_ is None:
            get, set_ = functools.partial(getattr, library, "num_threads"), library.set_num_threads
        controls.append((get, set_))
    return tuple(controls)


def blas_thread_count() -> int | None:
    """How many threads BLAS products use now, ``None`` when no BLAS is known to threadpoolctl."""
    controls = _thread_controls()
    return max(get() for get, _ in controls) if controls else None


class one_blas_thread:  # noqa: N801 - a context manager, named like contextlib's
    """Within the block, BLAS products use one thread (process-wide, restored after; nothing is set
    when they already do: inside a part, a ``sync`` share, a worker). Blocks in several threads must
    not overlap unless one encloses the others (:func:`parallel_parts` encloses its parts). The same
    helper as ``numpyml_layers._util.one_blas_thread`` (plugins do not import each other)."""

    __slots__ = ("_changed",)

    def __enter__(self) -> None:
        self._changed = [(set_, threads) for get, set_ in _thread_controls() if (threads := get()) != 1]
        for set_, _ in self._changed:
            set_(1)

    def __exit__(self, *exc_info: Any) -> None:
        for set_, threads in self._changed:
            set_(threads)


#: OpenBLAS's work buffer, where it packs the blocks of a product (made when more products run at once than
#: there are buffers): an anonymous mapping of BUFFER_SIZE, 32 MiB in NumPy's OpenBLAS builds
BLAS_BUFFER_BYTES = 32 << 20
_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # Linux's values (x86_64 and aarch64 alike)
#: ``NUMPYML_BLAS_HUGE_PAGES=0`` in the environment: leave the buffers' pages alone (to measure)
_HUGE_PAGES_OFF = os.environ.get("NUMPYML_BLAS_HUGE_PAGES") == "0"
#: how many calls of a process look for new buffers (each costs about 1 ms)
ADVISE_CALLS = 16
_advised_threads: set[tuple[int, int]] = set()  # (pid, thread) that have run products
_advise_calls: dict[int, int] = {}  # pid -> calls that looked for buffers


@functools.cache
def _madvise() -> Any:
    function = ctypes.CDLL(None, use_errno=True).madvise
    function.argtypes, function.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return function


def advise_huge_pages() -> int:
    """Ask Linux for 2 MiB pages under OpenBLAS's work buffers: ``madvise(MADV_HUGEPAGE)`` on every
    anonymous mapping of :data:`BLAS_BUFFER_BYTES` (or several of them side by side), and ``MADV_COLLAPSE`` for the
    pages already there (both keep the contents; unsupported, they change nothing). With 4 KiB pages
    (transparent huge pages only where asked for, as on this host) the products ran at 13-18 GFLOP/s
    per core, with 2 MiB pages at 30-32 (docs/layers.md). Returns how many buffers it advised."""
    if _HUGE_PAGES_OFF or not sys.platform.startswith("linux"):
        return 0
    try:
        with open("/proc/self/maps", encoding="ascii") as maps:
            lines = maps.read().splitlines()
        madvise = _madvise()
    except (OSError, AttributeError):  # no /proc, no madvise in libc
        return 0
    count = 0
    for line in lines:
        fields = line.split()  # start-end perms offset device inode [path]
        if len(fields) != 5 or fields[1] != "rw-p" or fields[4] != "0":
            continue
        start, end = (int(value, 16) for value in fields[0].split("-"))
        # buffers next to each other are one mapping (their NUMA policy keeps others apart)
        if (end - start) % BLAS_BUFFER_BYTES:
            continue
        madvise(start, end - start, _MADV_HUGEPAGE)  # pages touched from now on
        for region in range(start, end, _HUGE_PAGE):  # those already there (fails where none are)
            madvise(region, _HUGE_PAGE, _MADV_COLLAPSE)
        count += 1
    return count


def parallel_threads() -> int:
    """How many parts :func:`parallel_parts` splits work into here: the cores this process may run
    on, at most the BLAS's current thread count; 1 when the BLAS is unknown (its own threads and
    the parts would oversubscribe the cores)."""
    threads = blas_thread_count()
    if threads is None:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, threads))


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


def parallel_parts(function: Callable[[int, int, int], T], n: int, parts: int | None = None,
                   blas: bool = True) -> list[T]:
    """``[function(k, start, stop) for k, (start, stop) in enumerate(share_ranges(n, parts))]``, the parts
    run concurrently (part 0 on the calling thread) with one BLAS thread each (also a single part).

    ``parts`` defaults to :func:`parallel_threads`. The functions must write to disjoint memory
    (their own slices of a result, their own buffers). Every part finishes before this returns, also
    when one raises; the first exception (in part order) is raised again. ``blas``: the parts run BLAS
    products, so the first time a thread has run one, its OpenBLAS buffer is given huge pages
    (:func:`advise_huge_pages`)."""
    bounds = share_ranges(n, parallel_threads() if parts is None else parts)
    threads: list[tuple[int, int]] = []

    def part(k: int) -> T:
        threads.append((os.getpid(), threading.get_ident()))
        return function(k, *bounds[k])

    with one_blas_thread():  # also for one part: no OpenBLAS thread is woken, so none is left spinning
        if len(bounds) == 1:
            results = [part(0)]
        else:
            results = _run_parts(part, len(bounds))
    if blas:
        _after_products(threads)
    return results


def _after_products(threads: list[tuple[int, int]]) -> None:
    """After BLAS products in ``threads`` ((pid, thread) pairs): :func:`advise_huge_pages` when a thread runs
    products for the first time, and after each of a process's first :data:`ADVISE_CALLS` calls (OpenBLAS
    makes another buffer whenever more products than buffers run at once; reading the memory map costs
    about 1 ms, so not every time)."""
    pid = os.getpid()
    count = _advise_calls.get(pid, 0)
    if count < ADVISE_CALLS or not _advised_threads.issuperset(threads):
        _advise_calls[pid] = count + 1
        _advised_threads.update(threads)
        advise_huge_pages()


def _run_parts(part: Callable[[int], T], count: int) -> list[T]:
    """``[part(k) for k in range(count)]``, part 0 on this thread, the others on the pool."""
    pool = _executor(count - 1)
    futures = [pool.submit(part, k) for k in range(1, count)]
    results: list[Any] = []
    errors: list[BaseException] = []
    try:
        results.append(part(0))
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
