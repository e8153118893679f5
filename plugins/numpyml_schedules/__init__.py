"""numpyml built-in plugin: learning-rate schedules (constant, step, cosine, one-cycle)."""

from numpyml_core import hookimpl

from .schedules import Constant, Cosine, OneCycle, StepDecay

__all__ = ["Constant", "StepDecay", "Cosine", "OneCycle"]


@hookimpl
def numpyml_register_components(register):
    register("schedule", "constant", Constant)
    register("schedule", "step", StepDecay)
    register("schedule", "cosine", Cosine)
    register("schedule", "one_cycle", OneCycle)
