"""numpyml built-in plugin: optimizers.

``sgd``: stochastic gradient descent with momentum, Nesterov momentum, L2 regularization,
decoupled weight decay and global-norm gradient clipping.
``adam``: Adam with bias correction, L2 regularization, decoupled weight decay (AdamW) and
global-norm gradient clipping.
"""

from __future__ import annotations

from numpyml_core import hookimpl, lazy_exports

# What this plugin provides, as lazy references: a module is imported when its component is first
# used, so loading the plugin (numpyml list, --help) does not import NumPy or the implementation.
COMPONENTS: dict[tuple[str, str], str] = {
    ("optimizer", "sgd"): "numpyml_optimizers.sgd:SGD",
    ("optimizer", "adam"): "numpyml_optimizers.adam:Adam",
}

__all__ = ["SGD", "Adam"]
__getattr__ = lazy_exports(__name__, {
    "SGD": ".sgd:SGD",
    "Adam": ".adam:Adam",
})


@hookimpl
def numpyml_register_components(register):
    for (kind, name), factory in COMPONENTS.items():
        register(kind, name, factory)
