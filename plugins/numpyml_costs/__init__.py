"""numpyml built-in plugin: costs.

``quadratic`` (mean squared error) and ``cross_entropy`` (categorical, with optional label
smoothing, fused with a softmax head through log-sum-exp).
"""

from __future__ import annotations

from numpyml_core import hookimpl, lazy_exports

# What this plugin provides, as lazy references: a module is imported when its component is first
# used, so loading the plugin (numpyml list, --help) does not import NumPy or the implementation.
COMPONENTS: dict[tuple[str, str], str] = {
    ("cost", "quadratic"): "numpyml_costs.costs:Quadratic",
    ("cost", "cross_entropy"): "numpyml_costs.costs:CrossEntropy",
}

__all__ = ["Quadratic", "CrossEntropy"]
__getattr__ = lazy_exports(__name__, {
    "Quadratic": ".costs:Quadratic",
    "CrossEntropy": ".costs:CrossEntropy",
})


@hookimpl
def numpyml_register_components(register):
    for (kind, name), factory in COMPONENTS.items():
        register(kind, name, factory)
