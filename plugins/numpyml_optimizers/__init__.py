"""numpyml built-in plugin: optimizers.

``sgd``: stochastic gradient descent with momentum, Nesterov momentum, L2 regularization,
decoupled weight decay and global-norm gradient clipping.
``adam``: Adam with bias correction, L2 regularization, decoupled weight decay (AdamW) and
global-norm gradient clipping.
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("optimizer", "sgd"): "numpyml_optimizers.sgd:SGD",
    ("optimizer", "adam"): "numpyml_optimizers.adam:Adam",
})

__all__ = ["SGD", "Adam"]
__getattr__ = lazy_exports(__name__, {
    "SGD": ".sgd:SGD",
    "Adam": ".adam:Adam",
})
