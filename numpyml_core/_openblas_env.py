"""Imported first by ``numpyml_core``, before anything imports NumPy: how long OpenBLAS's idle
threads busy-wait.

After each product OpenBLAS's worker threads spin for ``2**OPENBLAS_THREAD_TIMEOUT`` CPU cycles
(default 28: about 0.1 s here) before they sleep, keeping a core busy. Layers that split their work
over their own threads (:func:`numpyml_core.blas.parallel_parts`) run right after such products (a
CNN's dense layers, then its convolutions' backward pass) and would share the cores with a thread
that does nothing: measured on the CIFAR benchmark network, 160 ms per batch instead of 110.
``2**22`` cycles (about 1.5 ms) still keeps the threads awake between the products of one training
step (the MLP benchmark is as fast as with the default). OpenBLAS reads the variable once, when NumPy
loads it, so this only takes effect when ``numpyml_core`` is imported before NumPy (as ``numpyml``
does); a value already set is kept. :data:`SHORT_WAIT` says whether the loaded OpenBLAS waits at
most ``2**24`` cycles; :func:`numpyml_core.blas.parallel_threads` is 1 otherwise (the layers then
leave the threading to OpenBLAS, as before).
"""

from __future__ import annotations

import os
import sys

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
