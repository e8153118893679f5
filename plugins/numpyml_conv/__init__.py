"""numpyml built-in plugin: convolution and pooling.

Layers: ``conv2d``; ``pool2d`` (``mode = "max"`` or ``"mean"``) with the aliases ``max_pool2d``
and ``avg_pool2d``; ``global_avg_pool`` (alias ``global_average_pooling2d``); ``patch_whitening``
(frozen filters from the training data's patch covariance, with the ``data_initialization`` callback). Images are NHWC
``(N, H, W, C)``; a convolution weight is ``(kh, kw, in, out)``. See ``docs/layers.md`` for the
algorithms (im2col + one BLAS product, col2im or a transposed convolution for the input gradient).
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("layer", "conv2d"): "numpyml_conv.conv:Conv2D",
    ("layer", "pool2d"): "numpyml_conv.pooling:Pool2D",
    ("layer", "max_pool2d"): "numpyml_conv.pooling:max_pool2d",
    ("layer", "avg_pool2d"): "numpyml_conv.pooling:avg_pool2d",
    ("layer", "global_avg_pool"): "numpyml_conv.pooling:GlobalAvgPool",
    ("layer", "global_average_pooling2d"): "numpyml_conv.pooling:GlobalAvgPool",
    ("layer", "patch_whitening"): "numpyml_conv.whitening:PatchWhitening",
})

__all__ = ["Conv2D", "GlobalAvgPool", "PatchWhitening", "Pool2D", "avg_pool2d", "max_pool2d"]
__getattr__ = lazy_exports(__name__, {
    "Conv2D": ".conv:Conv2D",
    "GlobalAvgPool": ".pooling:GlobalAvgPool",
    "PatchWhitening": ".whitening:PatchWhitening",
    "Pool2D": ".pooling:Pool2D",
    "avg_pool2d": ".pooling:avg_pool2d",
    "max_pool2d": ".pooling:max_pool2d",
})
