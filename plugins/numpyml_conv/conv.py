"""The 2-D convolution layer (im2col + one BLAS matrix product)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from numpyml_core.plugin_api import share_ranges
from .parts import parallel_parts

from ._util import (
    Scratch,
    as_float,
    check_image_input,
    check_image_shape,
    col2im_taps,
    component_from_spec,
    explicit_padding,
    im2col,
    im2col_transposed,
    match_dtype,
    matmul_single_thread,
    output_size,
    pair,
    require_forward,
    resolve_padding,
)

#: below this many input channels the column matrix is built transposed (see im2col_transposed)
FEW_CHANNELS = 8

#: weight gradients with at most this many entries are computed on one BLAS thread
SINGLE_THREAD_WEIGHT = 4096

#: column matrices are built and multiplied a chunk of samples at a time, each at most this many
#: bytes: the chunk is still in the CPU cache when BLAS reads it (measured here, im2col + product of
#: a 64x32x32x32 batch: 15.3 ms in one pass, 11.1 ms in 4.7 MB chunks), and memory stays small
#: whatever the batch size (the weight gradient rebuilds each chunk's columns instead of keeping
#: the whole matrix from the forward pass)
COLS_CHUNK_BYTES = 4 * 2**20

#: products of fewer multiply-adds than this run in one part: below it, handing parts to threads
#: costs more than the second core saves (see _in_parts)
PARALLEL_MIN_MACS = 16_000_000


def _chunks(begin: int, end: int, chunk: int) -> list[tuple[int, int]]:
    """``[begin, end)`` in as few pieces of at most ``chunk`` samples as possible, of nearly equal
    size (16 samples in chunks of 14 are 8 + 8, not 14 + 2)."""
    return [(begin + start, begin + stop) for start, stop in share_ranges(end - begin, -(-(end - begin) // chunk))]


class Conv2D:
    """2-D convolution (cross-correlation, as in Keras and PyTorch) over NHWC images:
    ``y = activation(conv(x, weight) + bias)``.

    Parameters:

    * ``filters``: number of output channels, at least 1.
    * ``kernel_size``: ``k`` or ``[kh, kw]`` (non-square kernels are fine).
    * ``strides``: ``s`` or ``[sh, sw]``.
    * ``padding``: ``"valid"`` (none), ``"same"`` (output ``ceil(size / stride)``, Keras's split:
      the odd extra row/column goes bottom/right), an integer (every side), ``[rows, cols]`` or
      ``[top, bottom, left, right]`` (zeros).
    * ``bias``: ``"tied"`` (one per filter, ``(filters,)``), ``"untied"`` (one per output position
      and filter, ``(out_h, out_w, filters)``) or ``"none"``.
    * ``activation``: a registered activation name or a table ``{type = ..., ...}``; none = linear.
    * ``weight_initializer`` / ``bias_initializer``: registered initializer names or tables
      (fan-in of the weight is ``kh*kw*in``).

    Shapes: input ``(N, H, W, in)``, output ``(N, out_h, out_w, filters)`` with
    ``out = floor((size + padding - kernel) / stride) + 1``; ``params``: ``weight``
    ``(kh, kw, in, filters)`` and ``bias`` as above.

    Algorithm (details and measurements in ``docs/layers.md``): the zero-padded input is copied
    window by window from a strided view into a reused column matrix ``(N*out_h*out_w, kh*kw*in)``
    (kept transposed when ``in < 8``, where that copy is faster), and one BLAS product with the
    weight ``(kh*kw*in, filters)`` gives the output. Cached for ``backward``: the column matrix,
    which also gives ``grads["weight"] = cols.T @ dz`` (one product). The input gradient is either
    a transposed convolution (stride 1: im2col of the padded ``dz`` times the flipped weight, one
    product) or ``dz @ weight.T`` computed tap-major and added back with one strided addition per
    kernel tap (col2im), whichever moves fewer bytes; no ``np.add.at``, no per-sample loop.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | list[int] = 3,
        strides: int | list[int] = 1,
        padding: Literal["valid", "same"] | int | list[int] = "valid",
        bias: Literal["tied", "untied", "none"] = "tied",
        activation: str | dict | None = None,
        weight_initializer: str | dict = "xavier",
        bias_initializer: str | dict = "zeros",
    ) -> None:
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive integer, got {filters!r}")
        if bias not in ("tied", "untied", "none"):
            raise ValueError(f'bias must be "tied", "untied" or "none", got {bias!r}')
        self.filters = filters
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = explicit_padding(padding)
        self.bias = bias
        #: the activation component or ``None``; the model may set it to ``None`` after ``build``
        self.activation: Any = (
            None if activation is None else component_from_spec("activation", activation, "activation")
        )
        self.weight_initializer = component_from_spec("initializer", weight_initializer, "weight_initializer")
        self.bias_initializer = (
            None if bias == "none" else component_from_spec("initializer", bias_initializer, "bias_initializer")
        )
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        #: set to False by the model when this is the first trainable layer (no dx needed)
        self.input_gradient = True
        self.input_shape: tuple[int, int, int] | None = None
        self.pads = (0, 0, 0, 0)
        self.out_hw = (0, 0)
        self._scratch = Scratch()
        self._x: np.ndarray | None = None  # the input of the last training forward, for backward
        self.transposed_cols = False

    # -- build ------------------------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        height, width, channels = check_image_shape(tuple(input_shape), "conv2d")
        kh, kw = self.kernel_size
        self.pads = resolve_padding(self.padding, (height, width), self.kernel_size, self.strides)
        out_h, out_w = output_size((height, width), self.kernel_size, self.strides, self.pads)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"conv2d kernel {kh}x{kw} with padding {self.pads} does not fit images of {height}x{width}"
            )
        self.input_shape = (height, width, channels)
        self.out_hw = (out_h, out_w)
        #: the column matrix is kept transposed, (kh*kw*in, rows), when there are few channels
        self.transposed_cols = channels < FEW_CHANNELS
        shape = (kh, kw, channels, self.filters)
        self.params = {"weight": np.asarray(self.weight_initializer(shape, rng, np.float32), dtype=np.float32)}
        if self.bias != "none":
            bias_shape = (self.filters,) if self.bias == "tied" else (out_h, out_w, self.filters)
            self.params["bias"] = np.asarray(self.bias_initializer(bias_shape, rng, np.float32), dtype=np.float32)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        output_shape = (out_h, out_w, self.filters)
        if self.activation is not None and hasattr(self.activation, "build"):
            self.activation.build(output_shape, rng)
        return output_shape

    # -- forward ----------------------------------------------------------------------------------
    def _chunk(self, n: int, bytes_per_sample: int) -> int:
        """Samples per chunk: as many as fit in :data:`COLS_CHUNK_BYTES` (at least one)."""
        return max(1, min(n, COLS_CHUNK_BYTES // max(1, bytes_per_sample)))

    def _padded(self, x: np.ndarray, chunk: int, pads: tuple[int, int, int, int] | None = None,
                name: str = "padded") -> np.ndarray:
        """``x`` (at most ``chunk`` samples) with a zero border of ``pads`` (top, bottom, left,
        right; the layer's padding by default), in a reused buffer ``name`` of ``chunk`` samples
        whose border is never written (``x`` itself when there is no padding)."""
        top, bottom, left, right = self.pads if pads is None else pads
        if not (top or bottom or left or right):
            return x
        n, h, w, c = x.shape
        shape = (chunk, h + top + bottom, w + left + right, c)
        padded = self._scratch.get(name, shape, x.dtype, zero_new=True)[:n]  # the border stays zero
        padded[:, top:top + h, left:left + w, :] = x
        return padded

    def _columns(self, x: np.ndarray, chunk: int, part: int) -> np.ndarray:
        """The column matrix of the samples ``x``: ``(n*out_h*out_w, kh*kw*in)``, or its transpose
        with few input channels (``self.transposed_cols``), in the reused buffers of ``part``."""
        kh, kw = self.kernel_size
        rows = x.shape[0] * self.out_hw[0] * self.out_hw[1]
        taps = kh * kw * x.shape[3]
        padded = self._padded(x, chunk, name=f"padded{part}")
        if self.transposed_cols:
            cols = self._scratch.get(f"cols{part}", (taps, rows), x.dtype)
            return im2col_transposed(padded, self.kernel_size, self.out_hw, self.strides, cols)
        cols = self._scratch.get(f"cols{part}", (rows, taps), x.dtype)
        return im2col(padded, self.kernel_size, self.out_hw, self.strides, cols)

    def _cols_chunk(self, n: int, dtype: np.dtype) -> int:
        kh, kw = self.kernel_size
        return self._chunk(n, self.out_hw[0] * self.out_hw[1] * kh * kw * self.input_shape[2] * dtype.itemsize)

    def _in_parts(self, function: Any, n: int) -> list[Any]:
        """:func:`.parts.parallel_parts` over ``n`` samples when the layer's product for
        them has at least :data:`PARALLEL_MIN_MACS` multiply-adds, one part otherwise."""
        kh, kw = self.kernel_size
        macs = n * self.out_hw[0] * self.out_hw[1] * kh * kw * self.input_shape[2] * self.filters
        return parallel_parts(function, n, None if macs >= PARALLEL_MIN_MACS else 1)

    def _linear(self, x: np.ndarray) -> np.ndarray:
        """``conv(x, weight) + bias`` as ``(N, out_h, out_w, filters)``: each thread's part of the
        batch chunk by chunk (see :func:`.parts.parallel_parts`)."""
        n = x.shape[0]
        out_h, out_w = self.out_hw
        weight = match_dtype(self.params["weight"], x.dtype).reshape(-1, self.filters)
        bias = None if self.bias == "none" else match_dtype(self.params["bias"], x.dtype)
        z = np.empty((n, out_h, out_w, self.filters), dtype=x.dtype)
        rows = out_h * out_w
        flat = z.reshape(n * rows, self.filters)
        chunk = self._cols_chunk(n, x.dtype)

        def part(k: int, begin: int, end: int) -> None:
            for start, stop in _chunks(begin, end, chunk):
                cols = self._columns(x[start:stop], chunk, k)
                np.matmul(cols.T if self.transposed_cols else cols, weight, out=flat[start * rows:stop * rows])
            if bias is not None:
                z[begin:end] += bias

        self._in_parts(part, n)
        return z

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        check_image_input(x, self.input_shape, "conv2d")
        self._x = x if training else None
        z = self._linear(x)
        if self.activation is not None:
            return self.activation.forward(z, training)
        return z

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        require_forward(self._x, self)
        dz = self.activation.backward(dy) if self.activation is not None else dy
        x = self._x
        n = x.shape[0]
        dz2 = np.ascontiguousarray(dz, dtype=x.dtype).reshape(-1, self.filters)
        weight_grad = self.grads["weight"]
        if weight_grad.dtype != x.dtype:
            weight_grad = self.grads["weight"] = np.empty(self.params["weight"].shape, x.dtype)
        weight_grad = weight_grad.reshape(-1, self.filters)
        # a small weight over many rows: one BLAS thread (see matmul_single_thread)
        product = matmul_single_thread if weight_grad.size <= SINGLE_THREAD_WEIGHT else np.matmul
        chunk = self._cols_chunk(n, x.dtype)
        rows = self.out_hw[0] * self.out_hw[1]
        with_bias = self.bias != "none"

        def part(k: int, begin: int, end: int) -> np.ndarray | None:
            """This part's bias gradient (``None`` without bias) and its weight gradient, the sum
            over its chunks of ``cols^T dz`` from rebuilt columns, in ``weight_grad`` for part 0."""
            total = weight_grad if k == 0 else self._scratch.get(f"weight_sum{k}", weight_grad.shape, x.dtype)
            for start, stop in _chunks(begin, end, chunk):
                cols = self._columns(x[start:stop], chunk, k)
                out = total if start == begin else self._scratch.get(f"weight_part{k}", weight_grad.shape, x.dtype)
                product(cols if self.transposed_cols else cols.T, dz2[start * rows:stop * rows], out=out)
                if out is not total:
                    total += out
            if not with_bias:
                return None
            dz_part = dz2[begin * rows:end * rows]
            return dz_part.sum(axis=0) if self.bias == "tied" else dz_part.reshape(end - begin, -1).sum(axis=0)

        bias_parts = self._in_parts(part, n)
        for k in range(1, len(bias_parts)):
            weight_grad += self._scratch.get(f"weight_sum{k}", weight_grad.shape, x.dtype)
        if with_bias:
            bias_grad = bias_parts[0]
            for other in bias_parts[1:]:
                bias_grad += other
            bias_grad = bias_grad.reshape(self.params["bias"].shape)
            if self.grads["bias"].dtype == bias_grad.dtype:
                self.grads["bias"][...] = bias_grad
            else:
                self.grads["bias"] = bias_grad
        self._x = None
        if not self.input_gradient:
            return None
        return self._input_gradient(dz2.reshape(n, *self.out_hw, self.filters))

    def _fits_transposed(self) -> bool:
        """Whether dx can be computed as a transposed convolution: stride 1, padding < kernel."""
        kh, kw = self.kernel_size
        top, bottom, left, right = self.pads
        return self.strides == (1, 1) and max(top, bottom) < kh and max(left, right) < kw

    def _transposed_ok(self) -> bool:
        """Use the transposed convolution for dx when possible and cheaper: its column matrix has
        ``H*W`` rows of ``kh*kw*filters`` (one copy), col2im's ``out_h*out_w`` rows of ``kh*kw*in``
        (written by the product, then read and added back: about three passes)."""
        if not self._fits_transposed():
            return False
        height, width, channels = self.input_shape
        out_h, out_w = self.out_hw
        return height * width * self.filters <= 3 * out_h * out_w * channels

    def _input_gradient(self, dz: np.ndarray) -> np.ndarray:
        n = dz.shape[0]
        height, width, channels = self.input_shape
        kh, kw = self.kernel_size
        top, bottom, left, right = self.pads
        weight = match_dtype(self.params["weight"], dz.dtype)
        if self._transposed_ok():
            # dx = full correlation of dz with the kernel flipped in space, in/out swapped, chunk by
            # chunk of samples (the columns stay in the cache, as in the forward pass)
            pt, pb, pl, pr = kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right
            flipped = self._scratch.get("flipped", (kh, kw, self.filters, channels), dz.dtype)
            np.copyto(flipped, weight[::-1, ::-1].transpose(0, 1, 3, 2))
            flipped = flipped.reshape(-1, channels)
            chunk = self._chunk(n, height * width * kh * kw * self.filters * dz.itemsize)
            dx = np.empty((n * height * width, channels), dz.dtype)
            rows = height * width

            def transposed(k: int, begin: int, end: int) -> None:
                for start, stop in _chunks(begin, end, chunk):
                    padded = self._padded(dz[start:stop], chunk, (pt, pb, pl, pr), f"dz_padded{k}")
                    cols = self._scratch.get(f"dz_cols{k}", ((stop - start) * rows, kh * kw * self.filters),
                                             dz.dtype)
                    im2col(padded, self.kernel_size, (height, width), (1, 1), cols)
                    np.matmul(cols, flipped, out=dx[start * rows:stop * rows])

            self._in_parts(transposed, n)
            return dx.reshape(n, height, width, channels)
        # col2im: dz @ weight.T, computed tap-major (one stacked product), scattered back per tap
        taps = kh * kw
        weight_t = self._scratch.get("weight_t", (taps, self.filters, channels), dz.dtype)
        np.copyto(weight_t, weight.reshape(taps, channels, self.filters).transpose(0, 2, 1))
        rows = self.out_hw[0] * self.out_hw[1]
        padded = (np.empty((n, height, width, channels), dz.dtype) if not any(self.pads) else
                  self._scratch.get("dx_padded", (n, height + top + bottom, width + left + right, channels), dz.dtype))

        def scattered(k: int, begin: int, end: int) -> None:
            dcols = self._scratch.get(f"dcols{k}", (taps, (end - begin) * rows, channels), dz.dtype)
            np.matmul(dz[begin:end].reshape(1, -1, self.filters), weight_t, out=dcols)
            col2im_taps(dcols, self.kernel_size, self.out_hw, self.strides, padded[begin:end])

        self._in_parts(scattered, n)
        if not any(self.pads):
            return padded
        return padded[:, top:top + height, left:left + width, :].copy()

    def __repr__(self) -> str:
        return (f"Conv2D(filters={self.filters}, kernel_size={list(self.kernel_size)}, strides={list(self.strides)}, "
                f"padding={self.padding!r}, bias={self.bias!r}, activation={self.activation!r})")
