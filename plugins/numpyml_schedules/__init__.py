"""numpyml built-in plugin: learning-rate schedules (constant, step, cosine, one-cycle)."""

from __future__ import annotations

from numpyml_core import hookimpl, lazy_exports

# What this plugin provides, as lazy references: a module is imported when its component is first
# used, so loading the plugin (numpyml list, --help) does not import NumPy or the implementation.
COMPONENTS: dict[tuple[str, str], str] = {
    ("schedule", "constant"): "numpyml_schedules.schedules:Constant",
    ("schedule", "step"): "numpyml_schedules.schedules:StepDecay",
    ("schedule", "cosine"): "numpyml_schedules.schedules:Cosine",
    ("schedule", "one_cycle"): "numpyml_schedules.schedules:OneCycle",
}

__all__ = ["Constant", "StepDecay", "Cosine", "OneCycle"]
__getattr__ = lazy_exports(__name__, {
    "Constant": ".schedules:Constant",
    "StepDecay": ".schedules:StepDecay",
    "Cosine": ".schedules:Cosine",
    "OneCycle": ".schedules:OneCycle",
})


@hookimpl
def numpyml_register_components(register):
    for (kind, name), factory in COMPONENTS.items():
        register(kind, name, factory)
