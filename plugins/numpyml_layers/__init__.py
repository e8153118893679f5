"""numpyml built-in plugin: layers and activations.

Layers: ``dense``, ``flatten``, ``reshape``, ``dropout``, ``batch_norm`` (alias
``batch_normalization``), and every activation (so it can stand alone in
``[[model.layers]]``). Activations: ``identity``, ``sigmoid``, ``tanh``, ``softmax``, ``relu``,
``leaky_relu``, ``gelu`` (tanh form). Layer ``scale`` multiplies by a constant (logit scaling).
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("layer", "dense"): "numpyml_layers.dense:Dense",
    ("layer", "flatten"): "numpyml_layers.reshaping:Flatten",
    ("layer", "reshape"): "numpyml_layers.reshaping:Reshape",
    ("layer", "dropout"): "numpyml_layers.dropout:Dropout",
    ("layer", "batch_norm"): "numpyml_layers.normalization:BatchNorm",
    ("layer", "batch_normalization"): "numpyml_layers.normalization:BatchNorm",
    ("activation", "identity"): "numpyml_layers.activations:Identity",
    ("layer", "identity"): "numpyml_layers.activations:Identity",
    ("activation", "sigmoid"): "numpyml_layers.activations:Sigmoid",
    ("layer", "sigmoid"): "numpyml_layers.activations:Sigmoid",
    ("activation", "tanh"): "numpyml_layers.activations:Tanh",
    ("layer", "tanh"): "numpyml_layers.activations:Tanh",
    ("activation", "softmax"): "numpyml_layers.activations:Softmax",
    ("layer", "softmax"): "numpyml_layers.activations:Softmax",
    ("activation", "relu"): "numpyml_layers.activations:ReLU",
    ("layer", "relu"): "numpyml_layers.activations:ReLU",
    ("activation", "leaky_relu"): "numpyml_layers.activations:LeakyReLU",
    ("layer", "leaky_relu"): "numpyml_layers.activations:LeakyReLU",
    ("activation", "gelu"): "numpyml_layers.activations:GELU",
    ("layer", "gelu"): "numpyml_layers.activations:GELU",
    ("layer", "scale"): "numpyml_layers.activations:Scale",
})

__all__ = [
    "Activation", "GELU", "Identity", "Scale", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh", "BatchNorm", "Dense", "Dropout",
    "Flatten", "Reshape",
]
__getattr__ = lazy_exports(__name__, {
    "Activation": ".activations:Activation",
    "Identity": ".activations:Identity",
    "LeakyReLU": ".activations:LeakyReLU",
    "GELU": ".activations:GELU",
    "Scale": ".activations:Scale",
    "ReLU": ".activations:ReLU",
    "Sigmoid": ".activations:Sigmoid",
    "Softmax": ".activations:Softmax",
    "Tanh": ".activations:Tanh",
    "BatchNorm": ".normalization:BatchNorm",
    "Dense": ".dense:Dense",
    "Dropout": ".dropout:Dropout",
    "Flatten": ".reshaping:Flatten",
    "Reshape": ".reshaping:Reshape",
})
