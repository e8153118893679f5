"""numpyml built-in plugin: parallel (work in progress)."""

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    pass
