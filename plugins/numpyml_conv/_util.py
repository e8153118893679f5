"""Helpers shared by the convolution and pooling layers: argument checking, window geometry, the
im2col / col2im kernels and a small scratch-buffer pool.

Layout conventions (see ``docs/layers.md``): images are NHWC; a column matrix ("cols") has one row
per output pixel ``(n, oh, ow)`` and one column per kernel tap ``(kh, kw, c)``, in that order, so a
convolution weight ``(kh, kw, in, out)`` reshaped to ``(kh*kw*in, out)`` multiplies it directly.
"""

from __future__ import annotations

from typing import Any

import math

import numpy as np

from numpyml_core import create_from_spec as component_from_spec  # noqa: F401 - re-exported
from numpyml_core.plugin_api import as_float  # noqa: F401 - re-exported


# -- arguments -----------------------------------------------------------------------------------
def pair(value: Any, what: str, minimum: int = 1) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``[2, 3]`` -> ``(2, 3)``; every entry an integer >= ``minimum``."""
    if isinstance(value, (list, tuple)):
        values = tuple(value)
    else:
        values = (value, value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
        raise ValueError(f"{what} must be an integer >= {minimum} or a list of two, got {value!r}")
    return values  # type: ignore[return-value]


def explicit_padding(padding: Any) -> tuple[int, int, int, int] | str:
    """Normalize a ``padding`` argument: ``"valid"``/``"same"`` stay strings; ``p`` -> all sides;
    ``[ph, pw]`` -> symmetric; ``[top, bottom, left, right]`` as given."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f'padding must be "valid", "same", or integers, got {padding!r}')
        return padding
    values = list(padding) if isinstance(padding, (list, tuple)) else [padding]
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values) or len(values) not in (1, 2, 4):
        raise ValueError(
            'padding must be "valid", "same", an integer >= 0, [rows, cols] or [top, bottom, left, right], '
            f"got {padding!r}"
        )
    if len(values) == 1:
        return (values[0],) * 4  # type: ignore[return-value]
    if len(values) == 2:
        return (values[0], values[0], values[1], values[1])
    return tuple(values)  # type: ignore[return-value]


def resolve_padding(padding: tuple[int, int, int, int] | str, size: tuple[int, int], window: tuple[int, int],
                    strides: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` for an input ``size``; ``"same"`` follows Keras/TensorFlow
    (output ``ceil(size / stride)``, the odd extra row or column at the bottom/right)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads = []
        for n, k, s in zip(size, window, strides):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)  # type: ignore[return-value]
    return padding  # type: ignore[return-value]


def output_size(size: tuple[int, int], window: tuple[int, int], strides: tuple[int, int],
                pads: tuple[int, int, int, int]) -> tuple[int, int]:
    """``floor((n + pad - k) / s) + 1`` per axis (rows and columns that do not fit are dropped)."""
    h = (size[0] + pads[0] + pads[1] - window[0]) // strides[0] + 1
    w = (size[1] + pads[2] + pads[3] - window[1]) // strides[1] + 1
    return h, w


def match_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return array if array.dtype == dtype else array.astype(dtype)


def require_forward(cached: Any, layer: Any) -> None:
    if cached is None:
        raise RuntimeError(f"{type(layer).__name__}.backward() called before forward()")


def check_image_input(x: np.ndarray, input_shape: tuple[int, ...] | None, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} expects a batch of NHWC images (N, height, width, channels), got shape {x.shape}")
    if input_shape is not None and x.shape[1:] != input_shape:
        raise ValueError(f"{name} was built for samples of shape {input_shape}, got {x.shape[1:]}")


def check_image_shape(input_shape: tuple[int, ...], name: str) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any(d < 1 for d in input_shape):
        raise ValueError(f"{name} needs images (height, width, channels) per sample, got shape {input_shape}")
    return input_shape  # type: ignore[return-value]


# -- scratch buffers -----------------------------------------------------------------------------
class Scratch:
    """Named scratch arrays reused between calls (re-allocated only when shape or dtype change).

    For arrays that never leave the layer, and (:meth:`output`) for what a layer returns when the model lets it
    recycle its outputs (``recycle_outputs``, :class:`numpyml_core.protocols.RecyclingLayer`).
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._step: set[str] = set()  # buffers of a training step: let go by release_step()

    def get(self, name: str, shape: tuple[int, ...], dtype: Any, zero_new: bool = False,
            step: bool = False) -> np.ndarray:
        """The array called ``name`` with this shape and dtype; a new one is zeroed when
        ``zero_new`` (for padded buffers whose border is never written); ``step``: a buffer only a
        training step uses, let go by :meth:`release_step`.

        Other buffers are kept flat and only ever grow: a smaller request (an evaluation chunk, the
        last short batch) is a view of the front of the existing one, so a layer holds one buffer
        per name at the largest size it has needed instead of one per shape."""
        if step:
            self._step.add(name)
        array = self._arrays.get(name)
        if zero_new:
            if array is None or array.shape != shape or array.dtype != dtype:
                array = self._arrays[name] = np.zeros(shape, dtype)
            return array
        size = math.prod(shape)
        if array is None or array.dtype != dtype or array.size < size:
            self._arrays[name] = None  # let the old buffer go before the new one is allocated
            array = self._arrays[name] = np.empty(size, dtype)
        return array[:size].reshape(shape)

    def output(self, name: str, shape: tuple[int, ...], dtype: Any, recycle: bool) -> np.ndarray:
        """An array to return: the buffer ``name`` when ``recycle`` (training calls of a layer whose model lets it
        recycle its outputs: no multi-MB allocation, so no page faults, per step), else a new one."""
        return self.get(name, shape, dtype, step=True) if recycle else np.empty(shape, dtype)

    def release_step(self) -> None:
        """Let every training-step buffer go (returned outputs, ``step`` buffers): an evaluation pass
        does not hold them."""
        for name in self._step:
            self._arrays.pop(name, None)
        self._step.clear()

    def clear(self) -> None:
        self._arrays.clear()


# -- windows -------------------------------------------------------------------------------------
def window_slice(x: np.ndarray, i: int, j: int, out_hw: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """The strided view ``x[:, i + s*oh, j + s*ow, :]`` for every output position: the input values
    that kernel tap ``(i, j)`` sees (shape ``(N, out_h, out_w, C)``)."""
    oh, ow = out_hw
    sh, sw = strides
    return x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def windows_view(x: np.ndarray, window: tuple[int, int], out_hw: tuple[int, int],
                 strides: tuple[int, int]) -> np.ndarray:
    """A read-only strided view ``(N, out_h, out_w, kh, kw, C)`` of every window (no copy)."""
    n, _, _, c = x.shape
    sn, sh_, sw_, sc = x.strides
    return np.lib.stride_tricks.as_strided(
        x, shape=(n, out_hw[0], out_hw[1], window[0], window[1], c),
        strides=(sn, sh_ * strides[0], sw_ * strides[1], sh_, sw_, sc), writeable=False,
    )


def im2col(x: np.ndarray, window: tuple[int, int], out_hw: tuple[int, int], strides: tuple[int, int],
           out: np.ndarray) -> np.ndarray:
    """Copy every window of padded ``x`` (N, H, W, C) into ``out`` (N*out_h*out_w, kh*kw*C): one
    row per output pixel, one column per kernel tap and channel. One copy from a strided 6-d view
    (its inner runs are ``C`` values long: use :func:`im2col_transposed` for few channels)."""
    n, _, _, c = x.shape
    kh, kw = window
    np.copyto(out.reshape(n, out_hw[0], out_hw[1], kh, kw, c), windows_view(x, window, out_hw, strides))
    return out


def im2col_transposed(x: np.ndarray, window: tuple[int, int], out_hw: tuple[int, int], strides: tuple[int, int],
                      out: np.ndarray) -> np.ndarray:
    """The transpose of :func:`im2col`'s matrix, ``out`` (kh*kw*C, N*out_h*out_w), written one
    kernel tap and channel at a time into contiguous rows: 3-4x faster than :func:`im2col` when
    there are few channels (a first layer on grey or RGB images)."""
    n, _, _, c = x.shape
    kh, kw = window
    rows = out.reshape(kh, kw, c, n, out_hw[0], out_hw[1])
    for i in range(kh):
        for j in range(kw):
            view = window_slice(x, i, j, out_hw, strides)
            for channel in range(c):
                rows[i, j, channel] = view[..., channel]
    return out


def col2im_taps(taps: np.ndarray, window: tuple[int, int], out_hw: tuple[int, int], strides: tuple[int, int],
                out: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`im2col` from a tap-major column array ``taps`` (kh*kw, N*out_h*out_w, C)
    (what ``dz @ weight.T`` is, computed one tap at a time): adds every tap's block back onto the
    input positions it read. ``out`` (N, H, W, C), the padded input shape, is overwritten.

    One strided addition per kernel tap (``kh*kw`` passes, none per sample or pixel). Tap-major
    blocks make the additions run over contiguous ``out_w*C`` stretches when the column stride is
    1 (twice as fast as adding the taps' columns out of an ``(N*out_h*out_w, kh*kw*C)`` matrix);
    taps that cannot overlap (stride >= window) are copied instead of added.
    """
    n, _, _, c = out.shape
    kh, kw = window
    blocks = taps.reshape(kh, kw, n, out_hw[0], out_hw[1], c)
    disjoint = strides[0] >= kh and strides[1] >= kw
    covers = (strides == window and out_hw[0] * strides[0] == out.shape[1]
              and out_hw[1] * strides[1] == out.shape[2])
    if not covers:
        out.fill(0)
    for i in range(kh):
        for j in range(kw):
            target = window_slice(out, i, j, out_hw, strides)
            if disjoint:
                np.copyto(target, blocks[i, j])
            else:
                target += blocks[i, j]
    return out
