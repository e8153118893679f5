"""numpyml built-in plugin: initializers.

``zeros``, ``ones``, ``constant``, ``gaussian``, and the variance-scaling ``lecun``, ``xavier``
(Glorot) and ``he``; ``dirac`` (identity, for convolutions). :func:`.initializers.fans` gives a shape's
Keras-style ``(fan_in, fan_out)``.
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("initializer", "zeros", "numpyml_initializers.initializers:Zeros")
    register("initializer", "ones", "numpyml_initializers.initializers:Ones")
    register("initializer", "constant", "numpyml_initializers.initializers:Constant")
    register("initializer", "gaussian", "numpyml_initializers.initializers:Gaussian")
    register("initializer", "lecun", "numpyml_initializers.initializers:LeCun")
    register("initializer", "xavier", "numpyml_initializers.initializers:Xavier")
    register("initializer", "he", "numpyml_initializers.initializers:He")
    register("initializer", "dirac", "numpyml_initializers.initializers:Dirac")
