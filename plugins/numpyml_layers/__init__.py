"""numpyml built-in plugin: layers and activations.

Layers: ``dense``, ``flatten``, ``reshape``, and every activation (so it can stand alone in
``[[model.layers]]``). Activations: ``identity``, ``sigmoid``, ``tanh``, ``softmax``, ``relu``,
``leaky_relu``.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .activations import ACTIVATIONS, Activation, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .dense import Dense
from .reshaping import Flatten, Reshape

__all__ = [
    "Activation", "Dense", "Flatten", "Identity", "LeakyReLU", "ReLU", "Reshape", "Sigmoid", "Softmax", "Tanh",
]


@hookimpl
def numpyml_register_components(register):
    register("layer", "dense", Dense)
    register("layer", "flatten", Flatten)
    register("layer", "reshape", Reshape)
    for name, activation in ACTIVATIONS.items():
        register("activation", name, activation)
        register("layer", name, activation)
