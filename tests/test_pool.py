"""pool2d (max/mean, any window and stride, valid/same) and global_avg_pool: forward against a
loop reference (and PyTorch when installed), gradient checks, arg-max routing and ties."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_layer_gradients
from numpyml_core import ConfigError, create


def reference_pool(x, pool, strides, mode, pads=(0, 0, 0, 0)):
    """Direct loops over every output cell; padded cells are ignored (never win, never counted)."""
    n, h, w, c = x.shape
    top, bottom, left, right = pads
    out_h = (h + top + bottom - pool[0]) // strides[0] + 1
    out_w = (w + left + right - pool[1]) // strides[1] + 1
    y = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * strides[0] - top, j * strides[1] - left
            rows = slice(max(r0, 0), min(r0 + pool[0], h))
            cols = slice(max(c0, 0), min(c0 + pool[1], w))
            window = x[:, rows, cols, :]
            y[:, i, j, :] = window.max(axis=(1, 2)) if mode == "max" else window.mean(axis=(1, 2))
    return y


def distinct_values(shape, seed=0):
    """A random permutation of well-separated values: no ties, gaps far above finite-difference eps."""
    size = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(size).reshape(shape) / size - 0.5) * 4


def random_config(seed):
    rng = np.random.default_rng(seed)
    pool = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    strides = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]  # < pool: overlap; > pool: gaps
    shape = (pool[0] + int(rng.integers(0, 4)), pool[1] + int(rng.integers(0, 4)), int(rng.integers(1, 3)))
    return pool, strides, shape


# -- registration --------------------------------------------------------------------------------
def test_pool_layers_are_registered():
    assert create("layer", "pool2d").pool_size == (2, 2)
    layer = create("layer", "pool2d", pool_size=[3, 2])
    assert layer.strides == (3, 2) and layer.mode == "max"  # strides default to the pool size
    assert create("layer", "max_pool2d", pool_size=3).mode == "max"
    assert create("layer", "avg_pool2d", pool_size=3, strides=1).mode == "mean"
    assert type(create("layer", "global_avg_pool")) is type(create("layer", "global_average_pooling2d"))


@pytest.mark.parametrize("params, message", [
    ({"mode": "median"}, "mode"), ({"pool_size": 0}, "pool_size"), ({"strides": [1, 2, 3]}, "strides"),
    ({"padding": "full"}, "padding"),
])
def test_pool_rejects_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        create("layer", "pool2d", **params)


def test_pool_rejects_a_window_larger_than_the_image():
    with pytest.raises(ValueError, match="does not fit"):
        create("layer", "pool2d", pool_size=5).build((4, 8, 1), np.random.default_rng(0))


# -- forward -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("seed", range(10))
def test_pool_forward_matches_loop_reference(mode, seed):
    pool, strides, shape = random_config(seed)
    padding = "same" if seed % 3 == 0 else "valid"
    layer = create("layer", "pool2d", pool_size=pool, strides=strides, mode=mode, padding=padding)
    out_shape = layer.build(shape, np.random.default_rng(0))
    x = np.random.default_rng(seed).standard_normal((2, *shape)).astype(np.float32)
    y = layer.forward(x, False)
    assert y.shape == (2, *out_shape) and y.dtype == np.float32
    np.testing.assert_allclose(y, reference_pool(x, pool, strides, mode, layer.pads), rtol=1e-6, atol=1e-6)


def test_non_tiling_windows_drop_the_remainder():
    layer = create("layer", "pool2d", pool_size=2)
    assert layer.build((5, 7, 1), np.random.default_rng(0)) == (2, 3, 1)
    x = distinct_values((1, 5, 7, 1))
    y = layer.forward(x, True)
    dx = layer.backward(np.ones_like(y))
    assert np.all(dx[:, 4, :, :] == 0) and np.all(dx[:, :, 6, :] == 0)  # never in a window
    assert dx.sum() == y.size


@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("seed", range(6))
def test_pool_matches_pytorch(mode, seed):
    torch = pytest.importorskip("torch")
    pool, strides, shape = random_config(seed)
    layer = create("layer", "pool2d", pool_size=pool, strides=strides, mode=mode)
    layer.build(shape, np.random.default_rng(0))
    x = distinct_values((3, *shape), seed)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_(True)
    op = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d
    yt = op(xt, pool, strides)
    y = layer.forward(x, True)
    np.testing.assert_allclose(y, yt.permute(0, 2, 3, 1).detach().numpy(), rtol=1e-12)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy).permute(0, 3, 1, 2))
    np.testing.assert_allclose(layer.backward(dy), xt.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-12, atol=1e-15)


# -- gradients -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("seed", range(10))
def test_pool_gradients_randomized(mode, seed):
    pool, strides, shape = random_config(seed)
    padding = "same" if seed % 3 == 0 else "valid"
    layer = create("layer", "pool2d", pool_size=pool, strides=strides, mode=mode, padding=padding)
    check_layer_gradients(layer, shape, batch=2, x=distinct_values((2, *shape), seed))


def in_parts(layer, parts):
    """``layer`` (pool2d) splits every batch into ``parts`` thread parts, however small."""
    layer.parts, layer.min_parallel_outputs = parts, 0
    return layer


@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("seed", range(6))
def test_pool_thread_parts_match_one_part(mode, seed):
    """Forward and backward split into thread parts of the batch give exactly what one part gives
    (also with ties, overlapping windows and padding)."""
    pool, strides, shape = random_config(seed)
    padding = "same" if seed % 2 else "valid"
    layer = create("layer", "pool2d", pool_size=pool, strides=strides, mode=mode, padding=padding)
    layer.build(shape, np.random.default_rng(0))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(7, *shape)).astype(np.float32)  # many ties
    results = {}
    for parts in (1, 2, 3, 7):
        in_parts(layer, parts)
        y = layer.forward(x, True)
        dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(np.float32)
        results[parts] = (y, layer.backward(dy))
    for parts, (y, dx) in results.items():
        np.testing.assert_array_equal(y, results[1][0], err_msg=f"forward, {parts} parts")
        np.testing.assert_allclose(dx, results[1][1], rtol=1e-6, atol=1e-6, err_msg=f"dx, {parts} parts")


@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("seed", range(4))
def test_pool_gradients_in_thread_parts(mode, seed):
    pool, strides, shape = random_config(seed)
    layer = in_parts(create("layer", "pool2d", pool_size=pool, strides=strides, mode=mode,
                            padding="same" if seed % 2 else "valid"), 3)
    check_layer_gradients(layer, shape, batch=4, x=distinct_values((4, *shape), seed))


def test_max_pool_routes_ties_to_one_deterministic_winner():
    layer = create("layer", "pool2d", pool_size=2, strides=1)  # overlapping windows
    layer.build((3, 3, 1), np.random.default_rng(0))
    x = np.ones((1, 3, 3, 1))
    y = layer.forward(x, True)
    dx = layer.backward(np.ones_like(y))
    # every window's first maximum (row-major) wins: the window's top-left cell
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    assert dx.sum() == y.size  # one winner per window, no split
    layer.forward(x, True)
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), dx)  # the same winner every time


def test_max_pool_overlapping_windows_add_up_at_a_shared_maximum():
    layer = create("layer", "pool2d", pool_size=3, strides=1)
    layer.build((4, 4, 1), np.random.default_rng(0))
    x = np.zeros((1, 4, 4, 1))
    x[0, 1, 1, 0] = 5.0  # the maximum of all four windows
    y = layer.forward(x, True)
    dx = layer.backward(np.full_like(y, 2.0))
    assert dx[0, 1, 1, 0] == 8.0 and np.count_nonzero(dx) == 1


# -- global average pooling ----------------------------------------------------------------------
def test_global_avg_pool_values_and_gradients():
    layer = create("layer", "global_avg_pool")
    assert layer.build((3, 4, 5), np.random.default_rng(0)) == (5,)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(layer.forward(x, False), x.mean(axis=(1, 2)))
    check_layer_gradients(layer, (3, 4, 5), batch=2, build=False)
    with pytest.raises(ValueError, match="height, width, channels"):
        create("layer", "global_avg_pool").build((10,), np.random.default_rng(0))


def test_pool_keeps_float32():
    for mode in ("max", "mean"):
        layer = create("layer", "pool2d", mode=mode)
        layer.build((4, 4, 3), np.random.default_rng(0))
        y = layer.forward(np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32), True)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
