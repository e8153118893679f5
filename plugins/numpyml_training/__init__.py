"""numpyml built-in plugin: training control callbacks.

* ``checkpoint`` (added by ``numpyml run`` by default): writes ``checkpoints/last.safetensors``
  after every epoch (and optionally every N batches or minutes), ``checkpoints/best.safetensors``
  when the monitored metric improves, and a checkpoint when the run is interrupted (Ctrl-C).
* ``early_stopping``: ends training when a metric stops improving, optionally restoring the best
  weights; its state (best value, patience count, best weights) travels with checkpoints.
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("callback", "checkpoint"): "numpyml_training.callbacks:Checkpoint",
    ("callback", "early_stopping"): "numpyml_training.callbacks:EarlyStopping",
})

__all__ = ["Checkpoint", "EarlyStopping"]
__getattr__ = lazy_exports(__name__, {
    "Checkpoint": ".callbacks:Checkpoint",
    "EarlyStopping": ".callbacks:EarlyStopping",
})
