"""The specification of :class:`.conv.Conv2D`: conv2d forward and backward in a few lines (the test oracle).

A strided view of every window (no copy) and one ``np.tensordot`` per result, as MyGrad's ``ConvND``.
Slow (no chunks, no thread parts, no buffers reused) but short enough to check by eye; the fast
layer must give the same values (``tests/test_conv.py``). Images are NHWC, the weight
``(kh, kw, in, out)``, ``pads`` ``(top, bottom, left, right)``.
"""

from __future__ import annotations

import numpy as np


def windows(x: np.ndarray, kernel_size: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """A read-only view ``(N, out_h, out_w, kh, kw, C)`` of every window of the (padded) ``x``."""
    (kh, kw), (sh, sw) = kernel_size, strides
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, H', W', C, kh, kw)
    return view[:, ::sh, ::sw].transpose(0, 1, 2, 4, 5, 3)


def pad(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = pads
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, strides: tuple[int, int],
                   pads: tuple[int, int, int, int]) -> np.ndarray:
    """``y[n, i, j, f] = sum over a, b, c of xpad[n, i*sh + a, j*sw + b, c] * weight[a, b, c, f] + bias``."""
    y = np.tensordot(windows(pad(x, pads), weight.shape[:2], strides), weight, axes=([3, 4, 5], [0, 1, 2]))
    return y if bias is None else y + bias


def conv2d_backward(x: np.ndarray, weight: np.ndarray, dz: np.ndarray, strides: tuple[int, int],
                    pads: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dweight, dbias)`` of :func:`conv2d_forward` for the gradient ``dz`` of its output
    (``dbias`` of a tied bias, ``(out,)``; an untied bias's gradient is ``dz.sum(axis=0)``)."""
    kh, kw = weight.shape[:2]
    sh, sw = strides
    top, _, left, _ = pads
    padded = pad(x, pads)
    dweight = np.tensordot(windows(padded, (kh, kw), strides), dz, axes=([0, 1, 2], [0, 1, 2]))
    dwindows = np.tensordot(dz, weight, axes=([3], [3]))  # (N, out_h, out_w, kh, kw, C)
    dpadded = np.zeros_like(padded, dtype=dwindows.dtype)
    out_h, out_w = dz.shape[1:3]
    for a in range(kh):  # every window position adds its share back where it read (col2im)
        for b in range(kw):
            dpadded[:, a:a + sh * (out_h - 1) + 1:sh, b:b + sw * (out_w - 1) + 1:sw] += dwindows[:, :, :, a, b]
    dx = dpadded[:, top:top + x.shape[1], left:left + x.shape[2]]
    return dx, dweight, dz.sum(axis=(0, 1, 2))
