"""numpyml built-in plugin: training control callbacks.

* ``checkpoint`` (added by ``numpyml run`` by default): writes ``checkpoints/last.safetensors``
  after every epoch (and optionally every N batches or minutes), ``checkpoints/best.safetensors``
  when the monitored metric improves, and a checkpoint when the run is interrupted (Ctrl-C).
* ``early_stopping``: ends training when a metric stops improving, optionally restoring the best
  weights; its state (best value, patience count, best weights) travels with checkpoints.
* ``ema``: an exponential moving average of the weights (optionally evaluated every epoch, loaded
  into the network at the end); ``lookahead``: the same average written back into the network every
  few steps (airbench's). Their state travels with checkpoints: resume stays bitwise exact.
* ``test_time_augmentation``: evaluate on the average of mirrored and translated views.
* ``data_initialization``: before the first batch, layers with ``initialize_from_data`` (such as
  ``patch_whitening``) fit themselves to the first training images.
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("callback", "checkpoint", "numpyml_training.callbacks:Checkpoint")
    register("callback", "early_stopping", "numpyml_training.callbacks:EarlyStopping")
    register("callback", "ema", "numpyml_training.averaging:EMA")
    register("callback", "lookahead", "numpyml_training.averaging:Lookahead")
    register("callback", "test_time_augmentation", "numpyml_training.evaluation:TestTimeAugmentation")
    register("callback", "data_initialization", "numpyml_training.datainit:DataInitialization")
