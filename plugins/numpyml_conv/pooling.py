"""Pooling layers: windowed max/mean pooling and global average pooling."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .parts import parallel_parts

from ._util import (
    Scratch,
    as_float,
    check_image_input,
    check_image_shape,
    output_size,
    pair,
    require_forward,
    resolve_padding,
    window_slice,
)

#: pooling outputs with fewer values than this are not split into thread parts: below it, handing
#: parts to threads costs more than the second core saves
PARALLEL_MIN_OUTPUTS = 131072


class Pool2D:
    """2-D max or mean pooling over NHWC images, per channel.

    Parameters:

    * ``pool_size``: ``k`` or ``[kh, kw]``.
    * ``strides``: ``s`` or ``[sh, sw]``; default: the pool size (non-overlapping windows).
      Smaller strides give overlapping windows.
    * ``mode``: ``"max"`` or ``"mean"``.
    * ``padding``: ``"valid"`` (windows that do not fit are dropped: trailing rows/columns that no
      window covers get a zero gradient) or ``"same"`` (output ``ceil(size / stride)``, Keras's
      split; padded cells never win a max and are not counted in a mean).

    Shapes: input ``(N, H, W, C)``, output ``(N, out_h, out_w, C)``. No parameters.

    Algorithm: one vectorized pass per window position (``kh*kw`` passes over strided views, none
    per sample or pixel). Max pooling routes the gradient of each window to one winner only, the
    first maximum in row-major window order (ties: one deterministic winner); overlapping windows
    add up. It caches its (padded) input and its output in training and finds the winners in
    ``backward`` (one comparison per window position, so evaluation pays nothing for them). Mean
    pooling caches only the shape.
    """

    def __init__(
        self,
        pool_size: int | list[int] = 2,
        strides: int | list[int] | None = None,
        mode: Literal["max", "mean"] = "max",
        padding: Literal["valid", "same"] = "valid",
    ) -> None:
        if mode not in ("max", "mean"):
            raise ValueError(f'mode must be "max" or "mean", got {mode!r}')
        if padding not in ("valid", "same"):
            raise ValueError(f'padding must be "valid" or "same", got {padding!r}')
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.mode = mode
        self.padding = padding
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, int, int] | None = None
        self.pads = (0, 0, 0, 0)
        self.out_hw = (0, 0)
        self._counts: np.ndarray | None = None
        self._input: np.ndarray | None = None
        self._output: np.ndarray | None = None
        self._batch_shape: tuple[int, ...] | None = None
        self._scratch = Scratch()
        #: thread parts for at least ``min_parallel_outputs`` output values (``parts`` ``None``: one per
        #: core, :func:`.parts.parallel_threads`); fewer stay in one part. Tests set both.
        self.parts: int | None = None
        self.min_parallel_outputs = PARALLEL_MIN_OUTPUTS
        self.recycle_outputs = False  # set by the model: training outputs may be reused buffers

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        height, width, channels = check_image_shape(tuple(input_shape), "pool2d")
        self.pads = resolve_padding(self.padding, (height, width), self.pool_size, self.strides)
        out_h, out_w = output_size((height, width), self.pool_size, self.strides, self.pads)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"pool2d window {self.pool_size} does not fit images of {height}x{width}")
        self.input_shape = (height, width, channels)
        self.out_hw = (out_h, out_w)
        if any(self.pads) and self.mode == "mean":
            ones = np.zeros((1, height + self.pads[0] + self.pads[1], width + self.pads[2] + self.pads[3], 1))
            ones[:, self.pads[0]:self.pads[0] + height, self.pads[2]:self.pads[2] + width] = 1
            counts = sum(window_slice(ones, i, j, self.out_hw, self.strides)
                         for i in range(self.pool_size[0]) for j in range(self.pool_size[1]))
            self._counts = counts[0]  # (out_h, out_w, 1): real cells per window
        return (out_h, out_w, channels)

    # -- helpers -----------------------------------------------------------------------------------
    def _padded(self, x: np.ndarray) -> np.ndarray:
        if not any(self.pads):
            return x
        top, bottom, left, right = self.pads
        n, h, w, c = x.shape
        fill = -np.inf if self.mode == "max" else 0.0
        padded = self._scratch.get("padded", (n, h + top + bottom, w + left + right, c), x.dtype)
        padded.fill(fill)
        padded[:, top:top + h, left:left + w, :] = x
        return padded

    def _taps(self):
        return [(i, j) for i in range(self.pool_size[0]) for j in range(self.pool_size[1])]

    def _in_parts(self, function: Any, n: int, outputs: int) -> None:
        """``function(k, begin, end)`` over the batch's samples in thread parts
        (:func:`.parts.parallel_parts`) when there are at least
        ``self.min_parallel_outputs`` output values, in one part otherwise."""
        parallel_parts(function, n, self.parts if outputs >= self.min_parallel_outputs else 1, blas=False)

    # -- forward / backward ------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        check_image_input(x, self.input_shape, "pool2d")
        self._batch_shape = x.shape
        xp = self._padded(x)
        taps = self._taps()
        n, c = x.shape[0], x.shape[3]
        if not training:
            self._scratch.release_step()  # the training step's buffers are not held while evaluating
        out = self._scratch.output("out", (n, *self.out_hw, c), x.dtype, training and self.recycle_outputs)

        def pool(k: int, begin: int, end: int) -> None:
            part, result = xp[begin:end], out[begin:end]
            np.copyto(result, window_slice(part, *taps[0], self.out_hw, self.strides))
            for i, j in taps[1:]:
                window = window_slice(part, i, j, self.out_hw, self.strides)
                if self.mode == "max":
                    np.maximum(result, window, out=result)
                else:
                    result += window
            if self.mode == "mean":
                if self._counts is None:
                    result *= result.dtype.type(1.0 / len(taps))
                else:
                    result /= self._counts.astype(result.dtype)

        self._in_parts(pool, n, out.size)
        # max: backward finds each window's winner again from the input and the maximum
        self._input, self._output = (xp, out) if training and self.mode == "max" else (None, None)
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._batch_shape, self)
        n, h, w, c = self._batch_shape
        top, bottom, left, right = self.pads
        taps = self._taps()
        shape = (n, h + top + bottom, w + left + right, c)
        if any(self.pads):  # the padded gradient never leaves the layer: a reused buffer
            dxp = self._scratch.get("dx_padded", shape, dy.dtype, step=True)
        else:
            dxp = self._scratch.output("dx", shape, dy.dtype, self.recycle_outputs)
        kh, kw = self.pool_size
        sh, sw = self.strides
        out_h, out_w = self.out_hw
        disjoint = sh >= kh and sw >= kw
        covers = (sh, sw) == (kh, kw) and out_h * sh == dxp.shape[1] and out_w * sw == dxp.shape[2]
        if self.mode == "max":
            require_forward(self._input, self)
            xp, out = self._input, self._output
            self._input = self._output = None
        else:
            share = dy * dy.dtype.type(1.0 / len(taps)) if self._counts is None else dy / self._counts.astype(dy.dtype)

        def route(k: int, begin: int, end: int) -> None:
            grad = dxp[begin:end]
            if not covers:
                grad.fill(0)
            if self.mode != "max":
                for i, j in taps:
                    target = window_slice(grad, i, j, self.out_hw, self.strides)
                    if disjoint:
                        target[...] = share[begin:end]
                    else:
                        target += share[begin:end]
                return
            # the first tap (row-major) equal to the window's maximum wins: one winner per window
            part_dy, part_x, part_out = dy[begin:end], xp[begin:end], out[begin:end]
            unclaimed = self._scratch.get(f"unclaimed{k}", part_dy.shape, np.bool_)
            unclaimed.fill(True)
            mask = self._scratch.get(f"mask{k}", part_dy.shape, np.bool_)
            routed = None if disjoint else self._scratch.get(f"routed{k}", part_dy.shape, dy.dtype)
            for index, (i, j) in enumerate(taps):
                target = window_slice(grad, i, j, self.out_hw, self.strides)
                np.equal(window_slice(part_x, i, j, self.out_hw, self.strides), part_out, out=mask)
                if index < len(taps) - 1:
                    mask &= unclaimed
                    unclaimed ^= mask
                else:
                    mask = unclaimed  # every window has a maximum: the last tap takes what is left
                if disjoint:
                    np.multiply(part_dy, mask, out=target)
                else:
                    np.multiply(part_dy, mask, out=routed)
                    target += routed

        self._in_parts(route, n, dy.size)
        if any(self.pads):
            dx = self._scratch.output("dx", (n, h, w, c), dy.dtype, self.recycle_outputs)
            np.copyto(dx, dxp[:, top:top + h, left:left + w, :])
            return dx
        return dxp

    def __repr__(self) -> str:
        return (f"Pool2D(pool_size={list(self.pool_size)}, strides={list(self.strides)}, mode={self.mode!r}, "
                f"padding={self.padding!r})")


def max_pool2d(pool_size: int | list[int] = 2, strides: int | list[int] | None = None,
               padding: Literal["valid", "same"] = "valid") -> Pool2D:
    """``pool2d`` with ``mode = "max"`` (Keras's MaxPooling2D)."""
    return Pool2D(pool_size=pool_size, strides=strides, mode="max", padding=padding)


def avg_pool2d(pool_size: int | list[int] = 2, strides: int | list[int] | None = None,
               padding: Literal["valid", "same"] = "valid") -> Pool2D:
    """``pool2d`` with ``mode = "mean"`` (Keras's AveragePooling2D)."""
    return Pool2D(pool_size=pool_size, strides=strides, mode="mean", padding=padding)


class GlobalAvgPool:
    """Global average pooling: the mean of every channel over all positions.

    Input ``(N, H, W, C)``, output ``(N, C)`` (flat: a ``dense`` layer can follow directly). No
    parameters; caches the input shape; ``backward`` spreads ``dy / (H*W)`` over every position.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, int, int] | None = None
        self._batch_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        self.input_shape = check_image_shape(tuple(input_shape), "global_avg_pool")
        return (self.input_shape[2],)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        check_image_input(x, self.input_shape, "global_avg_pool")
        self._batch_shape = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._batch_shape, self)
        n, h, w, c = self._batch_shape
        share = dy * dy.dtype.type(1.0 / (h * w))
        return np.broadcast_to(share[:, None, None, :], (n, h, w, c)).copy()

    def __repr__(self) -> str:
        return "GlobalAvgPool()"
