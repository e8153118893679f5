"""BLAS threads, a resource of the whole process: how long OpenBLAS's idle threads spin, and
:func:`blas_threads`, the one place that limits how many threads BLAS products use.

Imported first by ``numpyml_core``, before anything imports NumPy (documented import-time effect):
after each product OpenBLAS's worker threads spin for ``2**OPENBLAS_THREAD_TIMEOUT`` CPU cycles
(default 28: about 0.1 s here) before they sleep, keeping a core busy. Layers that split their work
over their own threads (the convolution plugin's ``parallel_parts``) run right after such products and
would share the cores with a thread that does nothing: measured on the CIFAR benchmark network, 160 ms
per batch instead of 110. So ``OPENBLAS_THREAD_TIMEOUT`` defaults to 22 (``2**22`` cycles, about 1.5 ms,
still keeps the threads awake between the products of one training step: the MLP benchmark is as
fast as with the default). OpenBLAS reads the variable once, when NumPy loads it, so this only takes
effect when ``numpyml_core`` is imported before NumPy (as ``numpyml`` does), and a value already set
is kept. It stays in the core, not in the convolution plugin, because a plugin is loaded too late
(after NumPy) to set it; and :func:`blas_threads` stays here because two plugins must agree on the
one process-wide setting (the ``sync`` strategy limits the training process's share, the convolution
layers read that limit).

:func:`blas_threads` works through ``openblas_set_num_threads_local`` in the OpenBLAS that NumPy's
wheels bundle; with another BLAS it does nothing (results are the same, only speed differs).
Despite its name that setting is process-wide in the bundled builds, so blocks must not overlap in
time across threads unless one block encloses the others.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, Iterator

__all__ = ["SHORT_WAIT", "blas_thread_count", "blas_thread_limit", "blas_threads", "can_limit_blas_threads"]

#: the value set when there is none: 2**22 cycles
DEFAULT_TIMEOUT = "22"


def _short_wait() -> bool:
    """Set the default when there is none; whether the OpenBLAS of this process waits briefly."""
    numpy_loaded = "numpy" in sys.modules
    value = os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", DEFAULT_TIMEOUT)
    if numpy_loaded and value == DEFAULT_TIMEOUT and not _set_by_user:
        return False  # OpenBLAS was loaded before the default was set: it waits 2**28 cycles
    try:
        return int(value) <= 24
    except ValueError:
        return False


_set_by_user = "OPENBLAS_THREAD_TIMEOUT" in os.environ
#: whether OpenBLAS's idle threads wait at most 2**24 cycles in this process
SHORT_WAIT = _short_wait()


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
    """Within the block, BLAS calls use at most ``n`` threads (when supported; blocks nest)."""
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


def blas_thread_limit() -> int | None:
    """The innermost :func:`blas_threads` limit of the calling thread, ``None`` outside any block."""
    return getattr(_limits, "limit", None)


def can_limit_blas_threads() -> bool:
    """Whether :func:`blas_threads` takes effect here (NumPy's BLAS is an OpenBLAS that can be limited)."""
    return _openblas().set_local is not None


def blas_thread_count() -> int | None:
    """How many threads BLAS products use now (``OPENBLAS_NUM_THREADS`` ...), ``None`` when unknown."""
    getter = _openblas().get_threads
    return None if getter is None else max(1, int(getter()))
