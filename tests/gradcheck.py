"""Numerical gradient checks for the built-in plugins' tests: numpyml's own plugin test kit.

The built-ins are tested with the same tools third-party plugin authors get
(:mod:`numpyml_kit.testing`, also a pytest plugin); this module only re-exports them so the
existing ``from gradcheck import ...`` lines keep working.
"""

from numpyml_kit.testing import (  # noqa: F401 - re-exported
    check_function_gradient,
    check_layer_gradients,
    numerical_gradient,
    to_float64,
)
