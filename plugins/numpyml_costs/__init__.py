"""numpyml built-in plugin: costs.

``quadratic`` (mean squared error) and ``cross_entropy`` (categorical, with optional label
smoothing, fused with a softmax head through log-sum-exp).
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("cost", "quadratic"): "numpyml_costs.costs:Quadratic",
    ("cost", "cross_entropy"): "numpyml_costs.costs:CrossEntropy",
})

__all__ = ["Quadratic", "CrossEntropy"]
__getattr__ = lazy_exports(__name__, {
    "Quadratic": ".costs:Quadratic",
    "CrossEntropy": ".costs:CrossEntropy",
})
