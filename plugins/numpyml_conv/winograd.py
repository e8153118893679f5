"""Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, 2016) for 3x3, stride-1 convolutions:
the transforms of the input, the weight, the output and their adjoints, whole-batch array passes.

A 3x3 convolution's output, cut into 2x2 tiles, is ``y = A^T [(G w G^T) * (B^T d B)] A`` per tile,
where ``d`` is the 4x4 input patch under the tile (patches overlap by 2) and ``*`` multiplies
elementwise over the 4x4 positions. Summed over the input channels, each of the 16 positions is
one matrix product ``(tiles, in) @ (in, out)``: 16 multiply-adds per tile and channel pair instead
of im2col's 36 (2.25x fewer), at the price of the transforms below (additions only, over arrays
4x the size of the input). Layout: a tile array is ``(16, tiles, channels)``, position-major
(``4 * row + column``), the tiles ordered ``(sample, tile_row, tile_col)``; every image here has
an even number of output rows and columns (:meth:`.conv.ConvPlan.fits_winograd`).
"""

from __future__ import annotations

import numpy as np

#: G of F(2, 3): the weight transform (4x3)
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def transform_weight(weight: np.ndarray) -> np.ndarray:
    """``G w G^T`` of a ``(3, 3, in, out)`` weight, as ``(16, in, out)`` in its dtype."""
    g = G.astype(weight.dtype)
    _, _, c, k = weight.shape
    return np.einsum("ai,ijck,bj->abck", g, weight, g, optimize=True).reshape(16, c, k)


def weight_gradient(tile_gradient: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`transform_weight`: ``G^T dU G``, ``(16, in, out)`` -> ``(3, 3, in, out)``."""
    g = G.astype(tile_gradient.dtype)
    _, c, k = tile_gradient.shape
    return np.einsum("ai,abck,bj->ijck", g, tile_gradient.reshape(4, 4, c, k), g, optimize=True)


def input_tiles(padded: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``B^T d B`` of every 4x4 patch of ``padded`` ``(n, 2*th + 2, 2*tw + 2, c)`` at stride 2.

    ``rows`` ``(4, n, th, 2*tw + 2, c)`` and ``out`` ``(4, 4, n, th, tw, c)`` are scratch buffers
    (``rows`` holds the row transform); returns ``out`` as ``(16, n*th*tw, c)``. ``B^T``'s rows are
    ``d0 - d2``, ``d1 + d2``, ``d2 - d1``, ``d1 - d3``: 8 array operations in all."""
    th = rows.shape[2]
    tw = out.shape[4]
    d = [padded[:, r:r + 2 * th:2] for r in range(4)]  # patch row r of every tile row
    _b_transpose(d, rows)
    cols = [rows[:, :, :, r:r + 2 * tw:2] for r in range(4)]  # patch column r of every tile column
    _b_transpose(cols, out.transpose(1, 0, 2, 3, 4, 5))
    return out.reshape(16, -1, padded.shape[3])


def _b_transpose(d: list[np.ndarray], out: np.ndarray) -> None:
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


def input_tiles_adjoint(tile_grads: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`input_tiles`: ``B dV B^T`` of every tile, added up where the 4x4 patches
    overlap, into ``out`` ``(n, 2*th + 2, 2*tw + 2, c)`` (overwritten).

    ``tile_grads`` ``(16, n*th*tw, c)``; ``rows`` ``(4, n, th, 2*tw + 2, c)`` is scratch (the column
    step's result). Per axis, patch positions ``0..3`` of tile ``j`` get ``B``'s columns of ``dV``:
    ``dv0``, ``dv1 - dv2 + dv3``, ``dv1 + dv2 - dv0``, ``-dv3``, and land on image positions
    ``2j..2j + 3``: 7 array operations per axis."""
    n, height, width, c = out.shape
    th, tw = (height - 2) // 2, (width - 2) // 2
    dv = tile_grads.reshape(4, 4, n, th, tw, c)
    pairs = rows.reshape(4, n, th, tw + 1, 2, c)  # image columns 2j, 2j + 1 of every patch row
    _b_adjoint([np.moveaxis(dv[:, b], 3, 0) for b in range(4)],
               np.moveaxis(pairs[..., 0, :], 3, 0), np.moveaxis(pairs[..., 1, :], 3, 0))
    pairs = out.reshape(n, th + 1, 2, width, c)  # image rows 2i, 2i + 1
    _b_adjoint([np.moveaxis(rows[a], 1, 0) for a in range(4)],
               np.moveaxis(pairs[:, :, 0], 1, 0), np.moveaxis(pairs[:, :, 1], 1, 0))
    return out


def _b_adjoint(d: list[np.ndarray], even: np.ndarray, odd: np.ndarray) -> None:
    """``even[j]``, ``odd[j]`` (positions ``2j``, ``2j + 1``, ``j`` in ``0..L``) = the sum of what the
    patches of tiles ``j`` (offsets 0, 1) and ``j - 1`` (offsets 2, 3) give them; ``d``: 4 arrays
    ``(L, ...)``, the tile axis first."""
    tiles = d[0].shape[0]
    np.copyto(even[:tiles], d[0])
    even[tiles] = 0
    even[1:] += d[1]
    even[1:] += d[2]
    even[1:] -= d[0]
    np.subtract(d[1], d[2], out=odd[:tiles])
    odd[:tiles] += d[3]
    odd[tiles] = 0
    odd[1:] -= d[3]


def output_from_tiles(products: np.ndarray, half: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``A^T M A`` of every tile: ``products`` ``(16, n*th*tw, k)`` (the 16 positions' products)
    into ``out`` ``(n, 2*th, 2*tw, k)``; ``half`` ``(2, 4, n, th, tw, k)`` is scratch (the row
    transform). ``A^T``'s rows are ``m0 + m1 + m2`` and ``m1 - m2 - m3``."""
    _, _, n, th, tw, k = half.shape
    m = products.reshape(4, 4, n, th, tw, k)
    _a_transpose(m, half)
    tiles = out.reshape(n, th, 2, tw, 2, k)
    for row in range(2):
        _a_transpose(half[row], tiles[:, :, row].transpose(3, 0, 1, 2, 4))
    return out


def _a_transpose(m: np.ndarray, out: np.ndarray) -> None:
    np.add(m[0], m[1], out=out[0])
    out[0] += m[2]
    np.subtract(m[1], m[2], out=out[1])
    out[1] -= m[3]


def output_gradient_tiles(dz: np.ndarray, half: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`output_from_tiles`: ``A dY A^T`` of every 2x2 tile of ``dz``
    ``(n, 2*th, 2*tw, k)`` into ``out`` ``(4, 4, n, th, tw, k)``, returned as ``(16, n*th*tw, k)``;
    ``half`` ``(4, n, th, 2*tw, k)`` is scratch. ``A``'s rows are ``y0``, ``y0 + y1``, ``y0 - y1``,
    ``-y1``."""
    n, height, width, k = dz.shape
    pairs = dz.reshape(n, height // 2, 2, width, k)
    _a(pairs[:, :, 0], pairs[:, :, 1], half)
    cols = half.reshape(4, n, height // 2, width // 2, 2, k)
    _a(cols[..., 0, :], cols[..., 1, :], out.transpose(1, 0, 2, 3, 4, 5))
    return out.reshape(16, -1, k)


def _a(y0: np.ndarray, y1: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out[0], y0)
    np.add(y0, y1, out=out[1])
    np.subtract(y0, y1, out=out[2])
    np.negative(y1, out=out[3])
