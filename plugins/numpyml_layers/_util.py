"""Small helpers shared by the layers of this plugin."""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator

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
def _blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries NumPy loaded (found once per process)."""
    return tuple(library for library in ThreadpoolController().lib_controllers if library.user_api == "blas")


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, BLAS products use one thread (process-wide, restored after; nothing is set
    when they already do). The same helper as ``numpyml_conv.parts.one_blas_thread`` (plugins do not
    import each other), except for ``NUMPYML_DENSE_BLAS_THREADS=all``.

    The dense and batch_norm products run so (``docs/layers.md``): OpenBLAS's threads are never
    woken, so none is left busy-waiting (``OPENBLAS_THREAD_TIMEOUT``, 2^28 cycles by default) beside
    the convolution layers' thread parts, and they do not collapse when another process holds a core."""
    # each library's thread count read once (a ctypes call each): the dense layers enter this block
    # four times per training step of an MLP
    changed = [] if _ALL_THREADS else [(library, threads) for library in _blas_libraries()
                                       if (threads := library.num_threads) != 1]
    for library, _ in changed:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, threads in changed:
            library.set_num_threads(threads)


#: ``NUMPYML_DENSE_BLAS_THREADS=all``: dense and batch_norm products use the BLAS's own threads (to
#: measure the other choice, docs/layers.md)
_ALL_THREADS = os.environ.get("NUMPYML_DENSE_BLAS_THREADS") == "all"
