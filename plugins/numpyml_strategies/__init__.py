"""numpyml built-in plugin: update strategies (how gradients become parameter updates).

``serial`` is the default: one process computes the whole batch's gradient and applies one
optimizer step. Multi-core and distributed strategies plug into the same seam.
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("strategy", "serial"): "numpyml_strategies.serial:Serial",
})

__all__ = ["Serial"]
__getattr__ = lazy_exports(__name__, {
    "Serial": ".serial:Serial",
})
