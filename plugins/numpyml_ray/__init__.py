"""numpyml built-in plugin: the update strategies on Ray (``ray_sync``, ``ray_async``).

Ray is an optional extra (``pip install 'numpyml[ray]'``): nothing here imports it until a Ray
strategy's run starts, so ``numpyml list`` shows these components without Ray installed, and
selecting one without Ray prints how to install it. See docs/distributed.md.
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("strategy", "ray_sync"): "numpyml_ray.strategies:RaySync",
    ("strategy", "ray_async"): "numpyml_ray.strategies:RayAsync",
})

__all__ = ["RaySync", "RayAsync"]
__getattr__ = lazy_exports(__name__, {
    "RaySync": ".strategies:RaySync",
    "RayAsync": ".strategies:RayAsync",
})
