"""numpyml built-in plugin: the update strategies on Ray (``ray_sync``, ``ray_async``).

Ray is an optional extra (``pip install 'numpyml[ray]'``): nothing here imports it until a Ray
strategy's run starts, so ``numpyml list`` shows these components without Ray installed, and
selecting one without Ray prints how to install it. See docs/distributed.md.
"""

from numpyml_core import hookimpl

from .strategies import RayAsync, RaySync


@hookimpl
def numpyml_register_components(register):
    register("strategy", "ray_sync", RaySync)
    register("strategy", "ray_async", RayAsync)
