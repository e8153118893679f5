"""numpyml built-in plugin: costs.

``quadratic`` (mean squared error) and ``cross_entropy`` (categorical, with optional label
smoothing, fused with a softmax head through log-sum-exp).
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .costs import COSTS, CrossEntropy, Quadratic

__all__ = ["CrossEntropy", "Quadratic"]


@hookimpl
def numpyml_register_components(register):
    for name, cost in COSTS.items():
        register("cost", name, cost)
