"""BLAS threads of the calling thread, for plugins that know better than the BLAS heuristics.

:func:`blas_threads` limits NumPy's BLAS to ``n`` threads for the calling thread inside a ``with``
block, through OpenBLAS's ``openblas_set_num_threads_local`` in the OpenBLAS that NumPy's wheels
bundle. With another BLAS (or an OpenBLAS without that function) it does nothing: results are the
same either way, only speed differs. Used by the convolution plugin (one thread for small weight
gradients over long inner dimensions) and by the ``sync`` strategy (the training process computes
its share of each batch on as many threads as each worker process, so they do not oversubscribe
the cores).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


def _openblas_local_threads() -> Any:
    """``openblas_set_num_threads_local`` from the OpenBLAS NumPy bundles, or ``None``."""
    import ctypes
    import glob
    import os

    import numpy as np

    folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
        try:
            function = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
        return function
    return None


_UNSET = object()
_set_local: Any = _UNSET


def _setter() -> Any:
    global _set_local
    if _set_local is _UNSET:
        _set_local = _openblas_local_threads()
    return _set_local


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Within the block, BLAS calls of this thread use at most ``n`` threads (when supported)."""
    setter = _setter()
    if setter is None:
        yield
        return
    previous = setter(int(n))
    try:
        yield
    finally:
        setter(previous)
