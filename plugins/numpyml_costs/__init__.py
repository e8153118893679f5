"""numpyml built-in plugin: costs.

``quadratic`` (mean squared error) and ``cross_entropy`` (categorical, with optional label
smoothing, fused with a softmax head through log-sum-exp).
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("cost", "quadratic", "numpyml_costs.costs:Quadratic")
    register("cost", "cross_entropy", "numpyml_costs.costs:CrossEntropy")
