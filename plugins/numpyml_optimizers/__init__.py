"""numpyml built-in plugin: optimizers.

``sgd``: stochastic gradient descent with momentum, Nesterov momentum, L2 regularization,
decoupled weight decay and global-norm gradient clipping.
``adam``: Adam with bias correction, L2 regularization, decoupled weight decay (AdamW) and
global-norm gradient clipping.
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("optimizer", "sgd", "numpyml_optimizers.sgd:SGD")
    register("optimizer", "adam", "numpyml_optimizers.adam:Adam")
