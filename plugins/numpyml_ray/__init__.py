"""numpyml built-in plugin: the update strategies on Ray (``ray_sync``, ``ray_async``).

Ray is an optional extra (``pip install 'numpyml[ray]'``): nothing here imports it until a Ray
strategy's run starts, so ``numpyml list`` shows these components without Ray installed, and
selecting one without Ray prints how to install it. See docs/distributed.md.
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("strategy", "ray_sync", "numpyml_ray.strategies:RaySync")
    register("strategy", "ray_async", "numpyml_ray.strategies:RayAsync")
