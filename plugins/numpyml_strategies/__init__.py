"""numpyml built-in plugin: update strategies (how gradients become parameter updates).

``serial`` is the default: one process computes the whole batch's gradient and applies one
optimizer step. Multi-core and distributed strategies plug into the same seam.
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("strategy", "serial", "numpyml_strategies.serial:Serial")
