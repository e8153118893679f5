"""numpyml built-in plugin: initializers.

``zeros``, ``ones``, ``constant``, ``gaussian``, and the variance-scaling ``lecun``, ``xavier``
(Glorot) and ``he``. :func:`fans` gives a shape's Keras-style ``(fan_in, fan_out)``.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .initializers import INITIALIZERS, Constant, Gaussian, He, LeCun, Ones, VarianceScaling, Xavier, Zeros, fans

__all__ = ["Constant", "Gaussian", "He", "LeCun", "Ones", "VarianceScaling", "Xavier", "Zeros", "fans"]


@hookimpl
def numpyml_register_components(register):
    for name, initializer in INITIALIZERS.items():
        register("initializer", name, initializer)
