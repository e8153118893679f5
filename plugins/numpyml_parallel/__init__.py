"""numpyml built-in plugin: multi-core update strategies.

* ``sync``: each mini-batch is split across worker processes; their gradients are averaged
  (weighted by share size) and one optimizer step is applied: the same updates as ``serial``.
* ``async``: worker processes compute gradients of whole batches on the parameters they were
  given; the training process applies each gradient as it arrives, with gradient-staleness
  compensation (``none``, ``divide``: learning rate / staleness, ``dc`` and ``dc_adaptive``:
  delay-compensated ASGD).

Workers start once per run (``spawn``), rebuild the network from the experiment through the plugin
manager and exchange parameters, gradients and batches through shared memory. See
``docs/parallel.md``.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from ._pool import WorkerError
from .staleness import StalenessCompensation
from .strategies import Async, Sync

__all__ = ["Async", "Sync", "StalenessCompensation", "WorkerError"]


@hookimpl
def numpyml_register_components(register):
    register("strategy", "sync", Sync)
    register("strategy", "async", Async)
