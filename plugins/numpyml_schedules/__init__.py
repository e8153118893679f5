"""numpyml built-in plugin: learning-rate schedules (constant, step, cosine, one-cycle)."""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("schedule", "constant", "numpyml_schedules.schedules:Constant")
    register("schedule", "step", "numpyml_schedules.schedules:StepDecay")
    register("schedule", "cosine", "numpyml_schedules.schedules:Cosine")
    register("schedule", "one_cycle", "numpyml_schedules.schedules:OneCycle")
