"""numpyml built-in plugin: optimizers.

``sgd``: stochastic gradient descent with momentum, Nesterov momentum, L2 regularization,
decoupled weight decay and global-norm gradient clipping.
``adam``: Adam with bias correction, L2 regularization, decoupled weight decay (AdamW) and
global-norm gradient clipping.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .adam import Adam
from .sgd import SGD

__all__ = ["Adam", "SGD"]


@hookimpl
def numpyml_register_components(register):
    register("optimizer", "sgd", SGD)
    register("optimizer", "adam", Adam)
