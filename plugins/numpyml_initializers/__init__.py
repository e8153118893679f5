"""numpyml built-in plugin: initializers.

``zeros``, ``ones``, ``constant``, ``gaussian``, and the variance-scaling ``lecun``, ``xavier``
(Glorot) and ``he``; ``dirac`` (identity, for convolutions). :func:`fans` gives a shape's Keras-style ``(fan_in, fan_out)``.
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("initializer", "zeros"): "numpyml_initializers.initializers:Zeros",
    ("initializer", "ones"): "numpyml_initializers.initializers:Ones",
    ("initializer", "constant"): "numpyml_initializers.initializers:Constant",
    ("initializer", "gaussian"): "numpyml_initializers.initializers:Gaussian",
    ("initializer", "lecun"): "numpyml_initializers.initializers:LeCun",
    ("initializer", "xavier"): "numpyml_initializers.initializers:Xavier",
    ("initializer", "he"): "numpyml_initializers.initializers:He",
    ("initializer", "dirac"): "numpyml_initializers.initializers:Dirac",
})

__all__ = ["Constant", "Dirac", "Gaussian", "He", "LeCun", "Ones", "VarianceScaling", "Xavier", "Zeros", "fans"]
__getattr__ = lazy_exports(__name__, {
    "Constant": ".initializers:Constant",
    "Dirac": ".initializers:Dirac",
    "Gaussian": ".initializers:Gaussian",
    "He": ".initializers:He",
    "LeCun": ".initializers:LeCun",
    "Ones": ".initializers:Ones",
    "VarianceScaling": ".initializers:VarianceScaling",
    "Xavier": ".initializers:Xavier",
    "Zeros": ".initializers:Zeros",
    "fans": ".initializers:fans",
})
