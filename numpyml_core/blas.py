"""BLAS threads, one setting for the whole process: how long OpenBLAS's idle threads spin, and how many
threads BLAS products use (:func:`blas_threads`, which two plugins must agree on, so it lives here).

Imported first by ``numpyml_core``, before NumPy loads OpenBLAS (which reads the variable once), it sets
``OPENBLAS_THREAD_TIMEOUT`` to 22 when unset: idle threads spin ``2**22`` cycles (~1.5 ms) instead of
``2**28`` (~0.1 s), which would steal a core from the convolution's thread parts (docs/layers.md).
:func:`blas_threads` calls ``openblas_set_num_threads_local`` of the OpenBLAS in NumPy's wheels (nothing
with another BLAS); that setting is process-wide, so blocks must not overlap in time across threads
unless one encloses the others.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from typing import Any, Iterator

#: the value set when there is none: 2**22 cycles
DEFAULT_TIMEOUT = "22"


def _short_wait() -> bool:
    """Set the default when there is none; whether the OpenBLAS of this process waits briefly."""
    set_by_user = "OPENBLAS_THREAD_TIMEOUT" in os.environ
    value = os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", DEFAULT_TIMEOUT)
    if "numpy" in sys.modules and not set_by_user:
        return False  # OpenBLAS was loaded before the default was set: it waits 2**28 cycles
    try:
        return int(value) <= 24
    except ValueError:
        return False


#: whether OpenBLAS's idle threads wait at most 2**24 cycles in this process
SHORT_WAIT = _short_wait()
_limits = threading.local()  # .limit: the innermost blas_threads(n) of this thread


@functools.cache
def _openblas() -> tuple[Any, Any]:
    """``(set_num_threads_local, get_num_threads)`` of the OpenBLAS NumPy bundles (``None`` where missing)."""
    import ctypes
    import glob

    import numpy as np

    folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
        try:
            library = ctypes.CDLL(path)
            setter = library.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = ctypes.c_int
        for name in ("openblas_get_num_threads", "openblas_get_num_threads64_",
                     "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads"):
            getter = getattr(library, name, None)
            if getter is not None:
                getter.restype = ctypes.c_int
                break
        return setter, getter
    return None, None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Within the block, BLAS calls use at most ``n`` threads (when supported; blocks nest)."""
    setter = _openblas()[0]
    outer = getattr(_limits, "limit", None)
    _limits.limit = int(n) if outer is None else min(int(n), outer)
    previous = None if setter is None else setter(_limits.limit)
    try:
        yield
    finally:
        if setter is not None:
            setter(previous)
        _limits.limit = outer


def blas_thread_limit() -> int | None:
    """The innermost :func:`blas_threads` limit of the calling thread, ``None`` outside any block."""
    return getattr(_limits, "limit", None)


def can_limit_blas_threads() -> bool:
    """Whether :func:`blas_threads` takes effect here (NumPy's BLAS is an OpenBLAS that can be limited)."""
    return _openblas()[0] is not None


def blas_thread_count() -> int | None:
    """How many threads BLAS products use now (``OPENBLAS_NUM_THREADS`` ...), ``None`` when unknown."""
    getter = _openblas()[1]
    return None if getter is None else max(1, int(getter()))
