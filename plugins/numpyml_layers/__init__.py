"""numpyml built-in plugin: layers and activations.

Layers: ``dense``, ``flatten``, ``reshape``, ``dropout``, ``batch_norm`` (alias
``batch_normalization``), and every activation (so it can stand alone in
``[[model.layers]]``). Activations: ``identity``, ``sigmoid``, ``tanh``, ``softmax``, ``relu``,
``leaky_relu``.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .activations import ACTIVATIONS, Activation, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNorm
from .reshaping import Flatten, Reshape

__all__ = [
    "Activation", "BatchNorm", "Dense", "Dropout", "Flatten", "Identity", "LeakyReLU", "ReLU", "Reshape", "Sigmoid",
    "Softmax", "Tanh",
]


@hookimpl
def numpyml_register_components(register):
    register("layer", "dense", Dense)
    register("layer", "flatten", Flatten)
    register("layer", "reshape", Reshape)
    register("layer", "dropout", Dropout)
    register("layer", "batch_norm", BatchNorm)
    register("layer", "batch_normalization", BatchNorm)
    for name, activation in ACTIVATIONS.items():
        register("activation", name, activation)
        register("layer", name, activation)
