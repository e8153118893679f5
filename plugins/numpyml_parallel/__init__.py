"""numpyml built-in plugin: multi-core update strategies.

* ``sync``: each mini-batch is split across worker processes; their gradients are averaged
  (weighted by share size) and one optimizer step is applied: the same updates as ``serial``.
* ``async``: worker processes compute gradients of whole batches on the parameters they were
  given (and the training process computes a batch itself when they are all busy); the training
  process applies each gradient as it arrives, with gradient-staleness compensation (``none``,
  ``divide``: learning rate / staleness, ``dc`` and ``dc_adaptive``: delay-compensated ASGD).

Workers start once per run (``spawn``), rebuild the network from the experiment through the plugin
manager and exchange parameters, gradients and batches through shared memory. See
``docs/parallel.md``.
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("strategy", "sync", "numpyml_parallel.strategies:Sync")
    register("strategy", "async", "numpyml_parallel.strategies:Async")
    # the staleness rules of async, also for ray_async (numpyml_core.create("staleness", "compensation", ...))
    register("staleness", "compensation", "numpyml_parallel.staleness:StalenessCompensation")
