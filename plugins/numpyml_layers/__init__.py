"""numpyml built-in plugin: layers and activations.

Layers: ``dense``, ``flatten``, ``reshape``, ``dropout``, ``batch_norm`` (alias
``batch_normalization``), and every activation (so it can stand alone in
``[[model.layers]]``). Activations: ``identity``, ``sigmoid``, ``tanh``, ``softmax``, ``relu``,
``leaky_relu``, ``gelu`` (tanh form). Layer ``scale`` multiplies by a constant (logit scaling).
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("layer", "dense", "numpyml_layers.dense:Dense")
    register("layer", "flatten", "numpyml_layers.reshaping:Flatten")
    register("layer", "reshape", "numpyml_layers.reshaping:Reshape")
    register("layer", "dropout", "numpyml_layers.dropout:Dropout")
    register("layer", "batch_norm", "numpyml_layers.normalization:BatchNorm")
    register("layer", "batch_normalization", "numpyml_layers.normalization:BatchNorm")
    register("activation", "identity", "numpyml_layers.activations:Identity")
    register("layer", "identity", "numpyml_layers.activations:Identity")
    register("activation", "sigmoid", "numpyml_layers.activations:Sigmoid")
    register("layer", "sigmoid", "numpyml_layers.activations:Sigmoid")
    register("activation", "tanh", "numpyml_layers.activations:Tanh")
    register("layer", "tanh", "numpyml_layers.activations:Tanh")
    register("activation", "softmax", "numpyml_layers.activations:Softmax")
    register("layer", "softmax", "numpyml_layers.activations:Softmax")
    register("activation", "relu", "numpyml_layers.activations:ReLU")
    register("layer", "relu", "numpyml_layers.activations:ReLU")
    register("activation", "leaky_relu", "numpyml_layers.activations:LeakyReLU")
    register("layer", "leaky_relu", "numpyml_layers.activations:LeakyReLU")
    register("activation", "gelu", "numpyml_layers.activations:GELU")
    register("layer", "gelu", "numpyml_layers.activations:GELU")
    register("layer", "scale", "numpyml_layers.activations:Scale")
