"""Small helpers shared by the layers of this plugin."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from typing import Any, Callable

import numpy as np
from threadpoolctl import ThreadpoolController

from numpyml_core import create_from_spec as component_from_spec  # noqa: F401 - re-exported
from numpyml_core.plugin_api import as_float  # noqa: F401 - re-exported


def match_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype`` (no copy when it already is)."""
    return array if array.dtype == dtype else array.astype(dtype)


def require_forward(cached: Any, layer: Any) -> None:
    if cached is None:
        raise RuntimeError(f"{type(layer).__name__}.backward() called before forward()")


@functools.cache
def _thread_controls() -> tuple[tuple[Callable[[], int], Callable[[int], Any]], ...]:
    """``(get, set)`` of the thread count of each BLAS library NumPy loaded, found by threadpoolctl: OpenBLAS's
    own C functions where threadpoolctl finds them (about 1 us a call, against 3-5 through its methods), else
    the controller's methods. The same as ``numpyml_conv.parts._thread_controls``."""
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


class one_blas_thread:  # noqa: N801 - a context manager, named like contextlib's
    """Within the block, BLAS products use one thread (process-wide, restored after; nothing is set
    when they already do). The same helper as ``numpyml_conv.parts.one_blas_thread`` (plugins do not
    import each other), except for ``NUMPYML_DENSE_BLAS_THREADS=all``.

    The dense and batch_norm products run so (``docs/layers.md``): OpenBLAS's threads are never
    woken, so none is left busy-waiting (``OPENBLAS_THREAD_TIMEOUT``, 2^28 cycles by default) beside
    the convolution layers' thread parts, and they do not collapse when another process holds a core.
    After a thread's first block, :func:`advise_huge_pages` gives its OpenBLAS buffer huge pages.
    A class rather than a generator: the dense layers enter it four times per training step of an
    MLP, and this costs about 7 us a block instead of 15 (docs/layers.md)."""

    __slots__ = ("_changed",)

    def __enter__(self) -> None:
        self._changed = [] if _ALL_THREADS else [(set_, threads) for get, set_ in _thread_controls()
                                                 if (threads := get()) != 1]
        for set_, _ in self._changed:
            set_(1)

    def __exit__(self, *exc_info: Any) -> None:
        for set_, threads in self._changed:
            set_(threads)
        key = (os.getpid(), threading.get_ident())  # once per thread: its buffer exists after its first product
        if key not in _advised_threads:
            _advised_threads.add(key)
            advise_huge_pages()


#: OpenBLAS's work buffer, where it packs the blocks of a product (made when more products run at once than
#: there are buffers): an anonymous mapping of BUFFER_SIZE, 32 MiB in NumPy's OpenBLAS builds
BLAS_BUFFER_BYTES = 32 << 20
_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25  # Linux's values (x86_64 and aarch64 alike)
#: ``NUMPYML_BLAS_HUGE_PAGES=0`` in the environment: leave the buffers' pages alone (to measure)
_HUGE_PAGES_OFF = os.environ.get("NUMPYML_BLAS_HUGE_PAGES") == "0"
_advised_threads: set[tuple[int, int]] = set()  # (pid, thread) whose buffer has been advised


@functools.cache
def _madvise() -> Any:
    function = ctypes.CDLL(None, use_errno=True).madvise
    function.argtypes, function.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return function


def advise_huge_pages() -> int:
    """Ask Linux for 2 MiB pages under OpenBLAS's work buffers (``madvise`` ``MADV_HUGEPAGE``, and
    ``MADV_COLLAPSE`` for the pages already there; contents kept). The same helper as
    ``numpyml_conv.parts.advise_huge_pages`` (plugins do not import each other), which says why;
    returns how many buffers it advised."""
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


#: ``NUMPYML_DENSE_BLAS_THREADS=all``: dense and batch_norm products use the BLAS's own threads (to
#: measure the other choice, docs/layers.md)
_ALL_THREADS = os.environ.get("NUMPYML_DENSE_BLAS_THREADS") == "all"
