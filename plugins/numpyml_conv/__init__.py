"""numpyml built-in plugin: convolution and pooling.

Layers: ``conv2d``; ``pool2d`` (``mode = "max"`` or ``"mean"``) with the aliases ``max_pool2d``
and ``avg_pool2d``; ``global_avg_pool`` (alias ``global_average_pooling2d``). Images are NHWC
``(N, H, W, C)``; a convolution weight is ``(kh, kw, in, out)``. See ``docs/layers.md`` for the
algorithms (im2col + one BLAS product, col2im or a transposed convolution for the input gradient).
"""

from __future__ import annotations

from numpyml_core import hookimpl, lazy_exports

# What this plugin provides, as lazy references: a module is imported when its component is first
# used, so loading the plugin (numpyml list, --help) does not import NumPy or the implementation.
COMPONENTS: dict[tuple[str, str], str] = {
    ("layer", "conv2d"): "numpyml_conv.conv:Conv2D",
    ("layer", "pool2d"): "numpyml_conv.pooling:Pool2D",
    ("layer", "max_pool2d"): "numpyml_conv.pooling:max_pool2d",
    ("layer", "avg_pool2d"): "numpyml_conv.pooling:avg_pool2d",
    ("layer", "global_avg_pool"): "numpyml_conv.pooling:GlobalAvgPool",
    ("layer", "global_average_pooling2d"): "numpyml_conv.pooling:GlobalAvgPool",
}

__all__ = ["Conv2D", "GlobalAvgPool", "Pool2D", "avg_pool2d", "max_pool2d"]
__getattr__ = lazy_exports(__name__, {
    "Conv2D": ".conv:Conv2D",
    "GlobalAvgPool": ".pooling:GlobalAvgPool",
    "Pool2D": ".pooling:Pool2D",
    "avg_pool2d": ".pooling:avg_pool2d",
    "max_pool2d": ".pooling:max_pool2d",
})


@hookimpl
def numpyml_register_components(register):
    for (kind, name), factory in COMPONENTS.items():
        register(kind, name, factory)
