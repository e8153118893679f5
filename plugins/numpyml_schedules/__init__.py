"""numpyml built-in plugin: schedules (work in progress)."""

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    pass
