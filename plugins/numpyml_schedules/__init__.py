"""numpyml built-in plugin: learning-rate schedules (constant, step, cosine, one-cycle)."""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("schedule", "constant"): "numpyml_schedules.schedules:Constant",
    ("schedule", "step"): "numpyml_schedules.schedules:StepDecay",
    ("schedule", "cosine"): "numpyml_schedules.schedules:Cosine",
    ("schedule", "one_cycle"): "numpyml_schedules.schedules:OneCycle",
})

__all__ = ["Constant", "StepDecay", "Cosine", "OneCycle"]
__getattr__ = lazy_exports(__name__, {
    "Constant": ".schedules:Constant",
    "StepDecay": ".schedules:StepDecay",
    "Cosine": ".schedules:Cosine",
    "OneCycle": ".schedules:OneCycle",
})
