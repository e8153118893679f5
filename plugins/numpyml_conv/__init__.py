"""numpyml built-in plugin: convolution and pooling.

Layers: ``conv2d``; ``pool2d`` (``mode = "max"`` or ``"mean"``) with the aliases ``max_pool2d``
and ``avg_pool2d``; ``global_avg_pool`` (alias ``global_average_pooling2d``). Images are NHWC
``(N, H, W, C)``; a convolution weight is ``(kh, kw, in, out)``. See ``docs/layers.md`` for the
algorithms (im2col + one BLAS product, col2im or a transposed convolution for the input gradient).
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .conv import Conv2D
from .pooling import GlobalAvgPool, Pool2D, avg_pool2d, max_pool2d

__all__ = ["Conv2D", "GlobalAvgPool", "Pool2D", "avg_pool2d", "max_pool2d"]


@hookimpl
def numpyml_register_components(register):
    register("layer", "conv2d", Conv2D)
    register("layer", "pool2d", Pool2D)
    register("layer", "max_pool2d", max_pool2d)
    register("layer", "avg_pool2d", avg_pool2d)
    register("layer", "global_avg_pool", GlobalAvgPool)
    register("layer", "global_average_pooling2d", GlobalAvgPool)
