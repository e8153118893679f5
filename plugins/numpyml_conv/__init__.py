"""numpyml built-in plugin: convolution and pooling.

Layers: ``conv2d``; ``pool2d`` (``mode = "max"`` or ``"mean"``) with the aliases ``max_pool2d``
and ``avg_pool2d``; ``global_avg_pool`` (alias ``global_average_pooling2d``); ``patch_whitening``
(frozen filters from the training data's patch covariance, with the ``data_initialization`` callback). Images are NHWC
``(N, H, W, C)``; a convolution weight is ``(kh, kw, in, out)``. See ``docs/layers.md`` for the
algorithms (im2col + one BLAS product, col2im or a transposed convolution for the input gradient).
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("layer", "conv2d", "numpyml_conv.conv:Conv2D")
    register("layer", "pool2d", "numpyml_conv.pooling:Pool2D")
    register("layer", "max_pool2d", "numpyml_conv.pooling:max_pool2d")
    register("layer", "avg_pool2d", "numpyml_conv.pooling:avg_pool2d")
    register("layer", "global_avg_pool", "numpyml_conv.pooling:GlobalAvgPool")
    register("layer", "global_average_pooling2d", "numpyml_conv.pooling:GlobalAvgPool")
    register("layer", "patch_whitening", "numpyml_conv.whitening:PatchWhitening")
