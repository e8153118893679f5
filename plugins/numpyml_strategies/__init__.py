"""numpyml built-in plugin: update strategies (how gradients become parameter updates).

``serial`` is the default: one process computes the whole batch's gradient and applies one
optimizer step. Multi-core and distributed strategies plug into the same seam.
"""

from __future__ import annotations

from numpyml_core import hookimpl, lazy_exports

# What this plugin provides, as lazy references: a module is imported when its component is first
# used, so loading the plugin (numpyml list, --help) does not import NumPy or the implementation.
COMPONENTS: dict[tuple[str, str], str] = {
    ("strategy", "serial"): "numpyml_strategies.serial:Serial",
}

__all__ = ["Serial"]
__getattr__ = lazy_exports(__name__, {
    "Serial": ".serial:Serial",
})


@hookimpl
def numpyml_register_components(register):
    for (kind, name), factory in COMPONENTS.items():
        register(kind, name, factory)
