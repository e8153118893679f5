"""The 2-D convolution layer (im2col + one BLAS matrix product, or Winograd's F(2x2, 3x3) for 3x3 kernels),
organised around a plan made in build()."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from numpyml_core.plugin_api import share_ranges

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
    output_size,
    pair,
    require_forward,
    resolve_padding,
)
from . import winograd
from .parts import one_blas_thread, parallel_parts


@dataclass
class ConvPlan:
    """How a :class:`Conv2D` computes, chosen by ``build()`` from its shapes (measurements in
    ``docs/layers.md``). Tests set the fields to reach every path on small layers.

    * ``algorithm``: ``"winograd"`` (3x3 kernel, stride 1, even sizes: :meth:`fits_winograd`;
      :mod:`.winograd`): forward and weight gradient as 16 products over 2x2 output tiles, 2.25x
      fewer multiply-adds than im2col (the transforms cost back part of it: 1.2-1.3x faster per
      layer here); ``"im2col"``: the column matrix times the weight. The weight gradient follows
      the forward's algorithm.
    * ``transposed_cols``: build the column matrix as ``(kh*kw*in, rows)``, one tap and channel at a
      time (3-4x faster to write than the row layout when ``in < 8``: a first layer on grey or RGB
      images); the products use its transpose.
    * ``chunk_bytes`` (``tile_chunk_bytes`` for Winograd's tiles): columns are built and multiplied
      a chunk of samples at a time, each chunk's matrix at most this big, so it is still in the
      cache when BLAS reads it and memory stays bounded whatever the batch size.
    * ``input_gradient``: ``"transposed"`` (a transposed convolution; stride 1 and padding <
      kernel only), ``"col2im"``, or ``"winograd"`` (with ``algorithm = "winograd"`` only): in the
      weight gradient's parts, from the same output-gradient tiles, ``dM @ U^T`` then the adjoint
      of the input transform (no transform of ``dz`` of its own).
    * ``col2im_chunk_bytes``: col2im's ``dz @ weight.T`` is computed and added back a chunk of
      samples at a time, each chunk's block at most this big (about the size of one core's L2
      cache, so the additions read it from there).
    * ``relu``: the layer's activation is ReLU (given as ``"relu"``) and the layer applies it
      itself, in the parts, to each chunk right after its product and bias (still in the cache),
      keeping the mask ``z > 0`` for backward, which multiplies by it in the weight gradient's
      parts; ``False``: the activation component's own ``forward``/``backward`` on the whole batch.
    * ``keep_columns_bytes``: a training forward whose column matrices for the whole batch take at
      most this many bytes keeps them (one buffer per chunk, reused from step to step), and the
      weight gradient multiplies them instead of building them again; 0: never kept (the weight
      gradient always rebuilds them from the input).
    * ``min_parallel_macs``: a product with fewer multiply-adds runs in one part (handing parts to
      threads costs more than the second core saves there).
    * ``parts``: how many thread parts above that; ``None``: one per core
      (:func:`.parts.parallel_threads`).
    """

    algorithm: Literal["im2col", "winograd"] = "im2col"
    transposed_cols: bool = False
    chunk_bytes: int = 4 * 2**20
    tile_chunk_bytes: int = 2 * 2**20
    input_gradient: Literal["transposed", "winograd", "col2im"] = "col2im"
    col2im_chunk_bytes: int = 2**20
    relu: bool = False
    keep_columns_bytes: int = 32 * 2**20
    min_parallel_macs: int = 16_000_000
    parts: int | None = None

    #: below this many input channels the column matrix is built transposed
    FEW_CHANNELS = 8

    @classmethod
    def for_layer(cls, layer: "Conv2D") -> "ConvPlan":
        """The plan for a layer whose shapes (``input_shape``, ``out_hw``, ``pads``) are set."""
        height, width, channels = layer.input_shape
        out_h, out_w = layer.out_hw
        transposed = cls.fits_transposed(layer) and (
            # its column matrix has H*W rows of kh*kw*filters (one copy); col2im's product writes
            # out_h*out_w rows of kh*kw*in, then reads and adds them back (about three passes)
            height * width * layer.filters <= 3 * out_h * out_w * channels)
        tiles = cls.fits_winograd(layer) and channels >= cls.FEW_CHANNELS
        return cls(algorithm="winograd" if tiles else "im2col",
                   transposed_cols=channels < cls.FEW_CHANNELS,
                   input_gradient="winograd" if tiles else "transposed" if transposed else "col2im",
                   relu=layer.activation_spec in ("relu", {"type": "relu"}))

    @staticmethod
    def fits_transposed(layer: "Conv2D") -> bool:
        """Whether dx can be computed as a transposed convolution: stride 1, padding < kernel."""
        kh, kw = layer.kernel_size
        top, bottom, left, right = layer.pads
        return layer.strides == (1, 1) and max(top, bottom) < kh and max(left, right) < kw

    @staticmethod
    def fits_winograd(layer: "Conv2D") -> bool:
        """Whether Winograd's F(2x2, 3x3) applies: a 3x3 kernel, stride 1, padding < 3, and even
        image and output sizes (whole 2x2 tiles in forward and in the input gradient)."""
        height, width, _ = layer.input_shape
        sizes = (height, width, *layer.out_hw)
        return (layer.kernel_size == (3, 3) and ConvPlan.fits_transposed(layer)
                and all(size % 2 == 0 for size in sizes))


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

    Algorithm (the specification is :mod:`.reference`; details and measurements in
    ``docs/layers.md``): im2col + one BLAS product. The batch is split into thread parts (one per
    core, :func:`.parts.parallel_parts`, every product on one BLAS thread) and each part into chunks
    of samples; per chunk the zero-padded input is copied window by window from a strided view into
    a reused column matrix ``(n*out_h*out_w, kh*kw*in)`` and multiplied by the weight
    ``(kh*kw*in, filters)``. Cached for ``backward``: the input, and the column matrices when the
    whole batch's take at most ``plan.keep_columns_bytes`` (else ``backward`` rebuilds each chunk's);
    ``backward`` multiplies them for ``grads["weight"] = cols.T @ dz`` and computes the input gradient either as a
    transposed convolution (im2col of the padded ``dz`` times the flipped weight) or as
    ``dz @ weight.T`` added back tap by tap (col2im). :class:`ConvPlan` holds every choice (column
    layout, chunk size, input-gradient algorithm, thread parts), made once by ``build()``.
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
        #: the ``activation`` argument as given (a plain ``"relu"`` is applied by the layer itself)
        self.activation_spec = activation
        self.weight_initializer = component_from_spec("initializer", weight_initializer, "weight_initializer")
        self.bias_initializer = (
            None if bias == "none" else component_from_spec("initializer", bias_initializer, "bias_initializer")
        )
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        #: set to False by the model when this is the first trainable layer (no dx needed)
        self.input_gradient = True
        self.recycle_outputs = False  # set by the model: training outputs may be reused buffers
        self.input_shape: tuple[int, int, int] | None = None
        self.pads = (0, 0, 0, 0)
        self.out_hw = (0, 0)
        #: how the layer computes, decided by build() from the shapes (tests may set its fields)
        self.plan = ConvPlan()
        #: plan fields that build() keeps whatever the shapes say (tests reach every path with them)
        self.plan_overrides: dict[str, Any] = {}
        self._scratch = Scratch()  # buffers of the whole layer: the rearranged weights, dx's padded image
        self._workspaces: list[Scratch] = []  # one per thread part: its padded input, columns, weight sum
        self._x: np.ndarray | None = None  # the input of the last training forward, for backward
        self._relu_mask: np.ndarray | None = None  # z > 0 of that forward when the plan fuses the ReLU
        #: the column matrices that forward kept for backward (``plan.keep_columns_bytes``), by chunk
        #: of samples ``(start, stop)`` (the chunks of every part: disjoint)
        self._kept: dict[tuple[int, int], np.ndarray] | None = None

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
        self.plan = dataclasses.replace(ConvPlan.for_layer(self), **self.plan_overrides)
        if self.plan.input_gradient == "transposed" and not ConvPlan.fits_transposed(self):
            raise ValueError("conv2d: the transposed-convolution input gradient needs stride 1 and padding < kernel")
        if "winograd" in (self.plan.algorithm, self.plan.input_gradient) and not ConvPlan.fits_winograd(self):
            raise ValueError("conv2d: Winograd's F(2x2, 3x3) needs a 3x3 kernel, stride 1, padding < 3 and even "
                             "image and output sizes")
        if self.plan.input_gradient == "winograd" and self.plan.algorithm != "winograd":
            raise ValueError('conv2d: input_gradient "winograd" needs algorithm "winograd" (it uses its tiles)')
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
    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        check_image_input(x, self.input_shape, "conv2d")
        self._x = x if training else None
        n = x.shape[0]
        if not training:
            self._scratch.release_step()  # the training step's buffers are not held while evaluating
        z = self._scratch.output("z", (n, *self.out_hw, self.filters), x.dtype, training and self.recycle_outputs)
        weight = match_dtype(self.params["weight"], x.dtype)
        weight = winograd.transform_weight(weight) if self._tiled() else weight.reshape(-1, self.filters)
        bias = None if self.bias == "none" else match_dtype(self.params["bias"], x.dtype)
        relu = self._fused_relu()
        mask = self._scratch.get("relu_mask", z.shape, np.bool_) if relu and training else None
        self._relu_mask = mask
        keep = training and n * self._column_bytes(x.dtype) <= self.plan.keep_columns_bytes
        self._kept = {} if keep else None
        self._in_parts(functools.partial(self._forward_part, x, weight, bias, relu, mask, z), n)
        if self.activation is not None and not relu:
            return self.activation.forward(z, training)
        return z

    def _tiled(self) -> bool:
        """Whether forward and the weight gradient use Winograd's tiles (``plan.algorithm``)."""
        return self.plan.algorithm == "winograd"

    def _fused_relu(self) -> bool:
        """Whether this call applies the ReLU itself (``plan.relu``, and the model has not taken
        the activation away)."""
        return self.plan.relu and self.activation is not None

    def _forward_part(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, relu: bool,
                      mask: np.ndarray | None, z: np.ndarray, part: int, begin: int, end: int) -> None:
        """``z[begin:end] = conv(x[begin:end], weight) + bias`` (then the ReLU, its mask kept in
        ``mask``, when ``relu``), chunk by chunk."""
        kept = self._kept
        for index, (start, stop) in enumerate(self._chunks(begin, end, self._columns_chunk(x.dtype))):
            cols = self._columns(x[start:stop], part, "cols" if kept is None else f"kept_cols{index}")
            if kept is not None:
                kept[(start, stop)] = cols
            out = z[start:stop]
            if self._tiled():  # a tied bias is added to the tiles' products, 1/4 of the output's size
                self._tile_product(cols, weight, out, self._workspace(part), bias if self.bias == "tied" else None)
            else:
                np.matmul(cols, weight, out=out.reshape(-1, self.filters))
            if bias is not None and not (self._tiled() and self.bias == "tied"):
                out += bias
            if relu:
                if mask is not None:
                    np.greater(out, 0, out=mask[start:stop])
                np.maximum(out, 0, out=out)

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        require_forward(self._x, self)
        x, self._x = self._x, None
        mask, self._relu_mask = self._relu_mask, None
        kept, self._kept = self._kept, None
        if mask is not None:  # the ReLU's dz = dy * mask is computed in the weight gradient's parts
            # dz never leaves the layer: a reused buffer (a fresh array of MNIST's first layer's 4.7 MB
            # costs ~1,150 page faults per step, as glibc returns large freed blocks to the system)
            dz = self._scratch.get("dz", mask.shape, x.dtype)
        else:
            dz = self.activation.backward(dy) if self.activation is not None else dy
            dz = np.ascontiguousarray(dz, dtype=x.dtype)
        dx = None
        if self.input_gradient and self.plan.input_gradient == "winograd":  # made by the same parts
            dx = self._scratch.output("dx", x.shape, x.dtype, self.recycle_outputs)
        self._weight_gradient(x, dy, mask, dz, kept or {}, dx)
        if self.bias != "none":
            self._set_grad("bias", self._bias_gradient(dz))
        if not self.input_gradient or dx is not None:
            return dx
        if self.plan.input_gradient == "transposed":
            return self._input_gradient_transposed(dz)
        return self._input_gradient_col2im(dz)

    def _set_grad(self, name: str, value: np.ndarray) -> None:
        """Write ``value`` into ``grads[name]`` (a new array when the dtype changed)."""
        if self.grads[name].dtype == value.dtype:
            self.grads[name][...] = value
        else:
            self.grads[name] = value

    def _bias_gradient(self, dz: np.ndarray) -> np.ndarray:
        """``dz`` summed over the samples (and the output positions for a tied bias), as a BLAS
        product with a ones vector: 8x faster than ``ndarray.sum`` over the rows (MNIST's first
        layer: 0.07 against 0.61 ms)."""
        rows = dz.reshape(dz.shape[0], -1) if self.bias == "untied" else dz.reshape(-1, self.filters)
        with one_blas_thread():  # like every product of the layer: no OpenBLAS thread woken
            return (np.ones(rows.shape[0], dz.dtype) @ rows).reshape(self.params["bias"].shape)

    def _weight_gradient(self, x: np.ndarray, dy: np.ndarray, mask: np.ndarray | None, dz: np.ndarray,
                         kept: dict[tuple[int, int], np.ndarray], dx: np.ndarray | None = None) -> None:
        """``grads["weight"] = cols.T @ dz`` summed over the parts (each its own sum, added here);
        with a ReLU ``mask``, each chunk's ``dz = dy * mask`` is written first; ``kept``: the
        columns forward kept, by chunk (the others are built again from ``x``); ``dx`` (Winograd's
        input gradient): written by the same parts, from the same output-gradient tiles."""
        if self.grads["weight"].dtype != x.dtype:
            self.grads["weight"] = np.empty(self.params["weight"].shape, x.dtype)
        weight_t = None
        if self._tiled():  # the sum of the 16 tile products' gradients, then G^T dU G
            total = self._scratch.get("tile_weight_sum", (16, self.input_shape[2], self.filters), x.dtype)
            if dx is not None:
                weight_t = self._scratch.get("tile_weight_t", (16, self.filters, self.input_shape[2]), x.dtype)
                np.copyto(weight_t, winograd.transform_weight(
                    match_dtype(self.params["weight"], x.dtype)).transpose(0, 2, 1))
        else:
            total = self.grads["weight"].reshape(-1, self.filters)
        sums = self._in_parts(
            functools.partial(self._weight_gradient_part, x, dy, mask, dz, total, kept, dx, weight_t), x.shape[0])
        for part_sum in sums[1:]:
            total += part_sum
        if self._tiled():
            self.grads["weight"][...] = winograd.weight_gradient(total)

    def _weight_gradient_part(self, x: np.ndarray, dy: np.ndarray, mask: np.ndarray | None, dz: np.ndarray,
                              total: np.ndarray, kept: dict[tuple[int, int], np.ndarray], dx: np.ndarray | None,
                              weight_t: np.ndarray | None, part: int, begin: int, end: int) -> np.ndarray:
        """This part's ``sum over its chunks of cols.T @ dz`` (Winograd: of ``tiles.T @ A dz A^T`` per
        position), the columns from ``kept`` or rebuilt from ``x``; in ``total`` itself for part 0, in the
        part's own buffer for the others. With ``dx``: also ``dx`` of the chunk, the adjoint of the
        input tiles of ``dM @ weight_t`` (``dM`` = the output-gradient tiles, ``weight_t`` = ``U^T``)."""
        workspace = self._workspace(part)
        part_sum = total if part == 0 else workspace.get("weight_sum", total.shape, x.dtype)
        rows = dz.reshape(-1, self.filters)
        per_sample = self.out_hw[0] * self.out_hw[1]
        for start, stop in self._chunks(begin, end, self._columns_chunk(x.dtype)):
            if mask is not None:
                np.multiply(dy[start:stop], mask[start:stop], out=dz[start:stop])
            cols = kept.get((start, stop))
            if cols is None:
                cols = self._columns(x[start:stop], part)
            out = part_sum if start == begin else workspace.get("weight_chunk", total.shape, x.dtype)
            if self._tiled():
                output_tiles = self._output_gradient_tiles(dz[start:stop], workspace)
                np.matmul(cols.transpose(0, 2, 1), output_tiles, out=out)
                if dx is not None:
                    self._tile_input_gradient(output_tiles, weight_t, dx[start:stop], workspace)
            else:
                np.matmul(cols.T, rows[start * per_sample:stop * per_sample], out=out)
            if out is not part_sum:
                part_sum += out
        return part_sum

    def _input_gradient_transposed(self, dz: np.ndarray) -> np.ndarray:
        """dx as the full correlation of ``dz`` with the kernel flipped in space, in and out
        swapped (stride 1, padding < kernel): im2col of the padded ``dz``, one product per chunk."""
        kh, kw = self.kernel_size
        height, width, channels = self.input_shape
        weight = match_dtype(self.params["weight"], dz.dtype)
        flipped = self._scratch.get("flipped", (kh, kw, self.filters, channels), dz.dtype)
        np.copyto(flipped, weight[::-1, ::-1].transpose(0, 1, 3, 2))
        dx = self._scratch.output("dx", (dz.shape[0], height, width, channels), dz.dtype, self.recycle_outputs)
        self._in_parts(functools.partial(self._transposed_part, dz, flipped.reshape(-1, channels), dx), dz.shape[0])
        return dx

    def _transposed_part(self, dz: np.ndarray, flipped: np.ndarray, dx: np.ndarray, part: int, begin: int,
                         end: int) -> None:
        kh, kw = self.kernel_size
        top, bottom, left, right = self.pads
        height, width, channels = self.input_shape
        pads = (kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right)
        workspace = self._workspace(part)
        rows = dx.reshape(-1, channels)
        per_sample = height * width
        chunk = self._chunk(height * width * kh * kw * self.filters * dz.itemsize)
        for start, stop in self._chunks(begin, end, chunk):
            padded = self._padded(dz[start:stop], chunk, pads, workspace, "dz_padded")
            cols = workspace.get("dz_cols", ((stop - start) * per_sample, kh * kw * self.filters), dz.dtype)
            im2col(padded, self.kernel_size, (height, width), (1, 1), cols)
            np.matmul(cols, flipped, out=rows[start * per_sample:stop * per_sample])

    def _input_gradient_col2im(self, dz: np.ndarray) -> np.ndarray:
        """dx as ``dz @ weight.T``, computed tap-major (one stacked product per part) and added
        back onto the input positions with one strided addition per kernel tap."""
        n = dz.shape[0]
        height, width, channels = self.input_shape
        top, bottom, left, right = self.pads
        taps = self.kernel_size[0] * self.kernel_size[1]
        weight = match_dtype(self.params["weight"], dz.dtype)
        weight_t = self._scratch.get("weight_t", (taps, self.filters, channels), dz.dtype)
        np.copyto(weight_t, weight.reshape(taps, channels, self.filters).transpose(0, 2, 1))
        if any(self.pads):
            padded = self._scratch.get("dx_padded", (n, height + top + bottom, width + left + right, channels),
                                       dz.dtype)
        else:
            padded = self._scratch.output("dx", (n, height, width, channels), dz.dtype, self.recycle_outputs)
        self._in_parts(functools.partial(self._col2im_part, dz, weight_t, padded), n)
        if not any(self.pads):
            return padded
        dx = self._scratch.output("dx", (n, height, width, channels), dz.dtype, self.recycle_outputs)
        np.copyto(dx, padded[:, top:top + height, left:left + width, :])
        return dx

    def _col2im_part(self, dz: np.ndarray, weight_t: np.ndarray, padded: np.ndarray, part: int, begin: int,
                     end: int) -> None:
        taps, _, channels = weight_t.shape
        per_sample = self.out_hw[0] * self.out_hw[1]
        chunk = max(1, self.plan.col2im_chunk_bytes // (taps * per_sample * channels * dz.itemsize))
        for start, stop in self._chunks(begin, end, chunk):
            dcols = self._workspace(part).get("dcols", (taps, (stop - start) * per_sample, channels), dz.dtype)
            np.matmul(dz[start:stop].reshape(1, -1, self.filters), weight_t, out=dcols)
            col2im_taps(dcols, self.kernel_size, self.out_hw, self.strides, padded[start:stop])

    # -- the plan's helpers -----------------------------------------------------------------------
    def _in_parts(self, function: Any, n: int) -> list[Any]:
        """:func:`.parts.parallel_parts` over ``n`` samples: in one part when the layer's product
        for them has fewer than ``plan.min_parallel_macs`` multiply-adds, else in ``plan.parts``
        parts (``None``: one per core)."""
        kh, kw = self.kernel_size
        macs = n * self.out_hw[0] * self.out_hw[1] * kh * kw * self.input_shape[2] * self.filters
        return parallel_parts(function, n, self.plan.parts if macs >= self.plan.min_parallel_macs else 1)

    def _workspace(self, part: int) -> Scratch:
        """The reused buffers of thread part ``part``."""
        while len(self._workspaces) <= part:
            self._workspaces.append(Scratch())
        return self._workspaces[part]

    def _chunk(self, bytes_per_sample: int) -> int:
        """Samples per chunk: as many as fit in ``plan.chunk_bytes`` (at least one)."""
        return max(1, self.plan.chunk_bytes // max(1, bytes_per_sample))

    def _column_bytes(self, dtype: np.dtype) -> int:
        """Bytes of one sample's column matrix (Winograd: its tiles, 16 values per 2x2 output tile)."""
        kh, kw = self.kernel_size
        taps = 4 if self._tiled() else kh * kw
        return self.out_hw[0] * self.out_hw[1] * taps * self.input_shape[2] * np.dtype(dtype).itemsize

    def _columns_chunk(self, dtype: np.dtype) -> int:
        if self._tiled():
            return max(1, self.plan.tile_chunk_bytes // self._column_bytes(dtype))
        return self._chunk(self._column_bytes(dtype))

    @staticmethod
    def _chunks(begin: int, end: int, chunk: int) -> list[tuple[int, int]]:
        """``[begin, end)`` in as few pieces of at most ``chunk`` samples as possible, of nearly equal
        size (16 samples in chunks of 14 are 8 + 8, not 14 + 2)."""
        return [(begin + start, begin + stop) for start, stop in share_ranges(end - begin, -(-(end - begin) // chunk))]

    def _padded(self, x: np.ndarray, chunk: int, pads: tuple[int, int, int, int], workspace: Scratch,
                name: str) -> np.ndarray:
        """``x`` (at most ``chunk`` samples) with a zero border of ``pads`` (top, bottom, left,
        right), in the reused buffer ``name`` of ``chunk`` samples whose border is never written
        (``x`` itself when there is no padding)."""
        top, bottom, left, right = pads
        if not (top or bottom or left or right):
            return x
        n, h, w, c = x.shape
        shape = (chunk, h + top + bottom, w + left + right, c)
        padded = workspace.get(name, shape, x.dtype, zero_new=True)[:n]  # the border stays zero
        padded[:, top:top + h, left:left + w, :] = x
        return padded

    def _columns(self, x: np.ndarray, part: int, name: str = "cols") -> np.ndarray:
        """The column matrix ``(n*out_h*out_w, kh*kw*in)`` of the samples ``x`` in the buffer
        ``name`` of ``part``: a transposed view of a ``(kh*kw*in, rows)`` array when
        ``plan.transposed_cols``; Winograd's tiles ``(16, tiles, in)`` when the layer uses them."""
        kh, kw = self.kernel_size
        rows = x.shape[0] * self.out_hw[0] * self.out_hw[1]
        taps = kh * kw * x.shape[3]
        workspace = self._workspace(part)
        padded = self._padded(x, self._columns_chunk(x.dtype), self.pads, workspace, "padded")
        if self._tiled():
            return self._tiles(padded, workspace, name)
        if self.plan.transposed_cols:
            cols = workspace.get(name, (taps, rows), x.dtype)
            return im2col_transposed(padded, self.kernel_size, self.out_hw, self.strides, cols).T
        cols = workspace.get(name, (rows, taps), x.dtype)
        return im2col(padded, self.kernel_size, self.out_hw, self.strides, cols)

    @staticmethod
    def _tiles(padded: np.ndarray, workspace: Scratch, name: str) -> np.ndarray:
        """Winograd's input tiles ``(16, tiles, c)`` of ``padded`` ``(n, 2*th + 2, 2*tw + 2, c)`` in
        the buffer ``name`` of ``workspace``."""
        n, height, width, channels = padded.shape
        shape = (n, (height - 2) // 2, (width - 2) // 2, channels)
        rows = workspace.get("tile_rows", (4, n, shape[1], width, channels), padded.dtype)
        return winograd.input_tiles(padded, rows, workspace.get(name, (4, 4, *shape), padded.dtype))

    @staticmethod
    def _tile_product(tiles: np.ndarray, weight: np.ndarray, out: np.ndarray, workspace: Scratch,
                      bias: np.ndarray | None = None) -> None:
        """``out`` ``(n, h, w, k)`` = the convolution whose input tiles are ``tiles`` ``(16, tiles, c)``
        and transformed weight ``weight`` ``(16, c, k)``: 16 products, then the output transform; plus
        ``bias`` ``(k,)``, added to position (1, 1), which ``A^T . A`` adds to each of a tile's 4 outputs."""
        n, height, width, k = out.shape
        products = workspace.get("tile_products", (16, tiles.shape[1], k), out.dtype)
        np.matmul(tiles, weight, out=products)
        if bias is not None:
            products[5] += bias
        winograd.output_from_tiles(
            products, workspace.get("tile_half", (2, 4, n, height // 2, width // 2, k), out.dtype), out)

    def _tile_input_gradient(self, output_tiles: np.ndarray, weight_t: np.ndarray, dx: np.ndarray,
                             workspace: Scratch) -> None:
        """``dx`` ``(n, H, W, in)`` from the output-gradient tiles ``dM`` ``(16, tiles, filters)``: the 16
        products ``dM @ U^T``, then the adjoint of the input transform onto the padded image, cropped."""
        n, height, width, channels = dx.shape
        top, bottom, left, right = self.pads
        grads = workspace.get("tile_input_grads", (16, output_tiles.shape[1], channels), dx.dtype)
        np.matmul(output_tiles, weight_t, out=grads)
        padded_shape = (n, height + top + bottom, width + left + right, channels)
        padded = workspace.get("dx_padded", padded_shape, dx.dtype) if any(self.pads) else dx
        rows = workspace.get("tile_rows", (4, n, self.out_hw[0] // 2, padded_shape[2], channels), dx.dtype)
        winograd.input_tiles_adjoint(grads, rows, padded)
        if padded is not dx:
            np.copyto(dx, padded[:, top:top + height, left:left + width])

    def _output_gradient_tiles(self, dz: np.ndarray, workspace: Scratch) -> np.ndarray:
        """``A dz A^T`` of every 2x2 tile of ``dz`` ``(n, out_h, out_w, filters)``: ``(16, tiles, filters)``."""
        n, height, width, k = dz.shape
        half = workspace.get("dz_half", (4, n, height // 2, width, k), dz.dtype)
        return winograd.output_gradient_tiles(dz, half, workspace.get("dz_tiles", (4, 4, n, height // 2, width // 2, k),
                                                                      dz.dtype))

    def __repr__(self) -> str:
        return (f"Conv2D(filters={self.filters}, kernel_size={list(self.kernel_size)}, strides={list(self.strides)}, "
                f"padding={self.padding!r}, bias={self.bias!r}, activation={self.activation!r})")
