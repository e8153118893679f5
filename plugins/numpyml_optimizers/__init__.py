"""numpyml built-in plugin: optimizers.

``sgd``: stochastic gradient descent with momentum, Nesterov momentum, L2 regularization,
decoupled weight decay and global-norm gradient clipping.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .sgd import SGD

__all__ = ["SGD"]


@hookimpl
def numpyml_register_components(register):
    register("optimizer", "sgd", SGD)
