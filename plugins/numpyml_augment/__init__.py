"""numpyml built-in plugin: augment (work in progress)."""

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    pass
