"""conv2d: forward against a direct loop reference (and PyTorch when installed), float64 gradient
checks over randomized shapes, both input-gradient algorithms, shapes, dtypes, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck import check_layer_gradients
from numpyml_core import ConfigError, create


def reference_conv(x, weight, bias, strides, pads):
    """Direct loops: y[n, i, j, f] = sum_{a, b, c} xpad[n, i*sh + a, j*sw + b, c] * w[a, b, c, f] + bias."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw, _, filters = weight.shape
    sh, sw = strides
    out_h = (xp.shape[1] - kh) // sh + 1
    out_w = (xp.shape[2] - kw) // sw + 1
    y = np.zeros((x.shape[0], out_h, out_w, filters))
    for n in range(x.shape[0]):
        for i in range(out_h):
            for j in range(out_w):
                window = xp[n, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
                for f in range(filters):
                    y[n, i, j, f] = np.sum(window * weight[:, :, :, f])
    if bias is not None:
        y += bias
    return y


def random_config(seed):
    """A random conv2d configuration and input shape (small: float64 gradient checks are O(size^2))."""
    rng = np.random.default_rng(seed)
    kernel = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    strides = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    padding = [
        "valid", "same", int(rng.integers(0, 3)), [int(rng.integers(0, 3)), int(rng.integers(0, 2))],
        [int(v) for v in rng.integers(0, 3, size=4)],
    ][seed % 5]
    bias = ["tied", "untied", "none"][seed % 3]
    height = kernel[0] + int(rng.integers(0, 4))
    width = kernel[1] + int(rng.integers(0, 4))
    channels = int(rng.integers(1, 4))
    filters = int(rng.integers(1, 4))
    params = dict(filters=filters, kernel_size=kernel, strides=strides, padding=padding, bias=bias,
                  bias_initializer={"type": "gaussian", "stddev": 0.5})
    return params, (height, width, channels)


# -- registration and shapes ---------------------------------------------------------------------
def test_conv2d_is_registered_with_keras_parameters():
    layer = create("layer", "conv2d", filters=4, kernel_size=[3, 2], strides=[2, 1], padding="same",
                   activation="relu", weight_initializer="he")
    out = layer.build((7, 5, 3), np.random.default_rng(0))
    assert out == (4, 5, 4)  # same: ceil(7/2), ceil(5/1)
    assert layer.params["weight"].shape == (3, 2, 3, 4) and layer.params["weight"].dtype == np.float32
    assert layer.params["bias"].shape == (4,)


@pytest.mark.parametrize("bias, shape", [("tied", (4,)), ("untied", (5, 6, 4)), ("none", None)])
def test_conv2d_bias_modes(bias, shape):
    layer = create("layer", "conv2d", filters=4, kernel_size=3, bias=bias)
    assert layer.build((7, 8, 2), np.random.default_rng(0)) == (5, 6, 4)
    assert (layer.params.get("bias") is None) == (shape is None)
    if shape:
        assert layer.params["bias"].shape == shape
    assert set(layer.grads) == set(layer.params)


@pytest.mark.parametrize("size, kernel, stride", [(7, 3, 2), (8, 3, 2), (5, 4, 3), (6, 1, 4), (9, 2, 1)])
def test_same_padding_gives_ceil_size(size, kernel, stride):
    layer = create("layer", "conv2d", filters=1, kernel_size=kernel, strides=stride, padding="same")
    assert layer.build((size, size, 1), np.random.default_rng(0))[:2] == (math.ceil(size / stride),) * 2


@pytest.mark.parametrize("params, message", [
    ({"filters": 0}, "filters"),
    ({"filters": 2, "kernel_size": [3, 0]}, "kernel_size"),
    ({"filters": 2, "strides": [1, 2, 3]}, "strides"),
    ({"filters": 2, "padding": "full"}, "padding"),
    ({"filters": 2, "padding": [1, 2, 3]}, "padding"),
    ({"filters": 2, "padding": -1}, "padding"),
    ({"filters": 2, "bias": "shared"}, "bias"),
    ({"filters": 2, "activation": "nope"}, "activation"),
])
def test_conv2d_rejects_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        create("layer", "conv2d", **params)


def test_conv2d_rejects_bad_input_shapes():
    layer = create("layer", "conv2d", filters=2, kernel_size=5)
    with pytest.raises(ValueError, match="height, width, channels"):
        layer.build((28, 28), np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not fit"):
        layer.build((4, 8, 1), np.random.default_rng(0))
    layer.build((8, 8, 1), np.random.default_rng(0))
    with pytest.raises(ValueError, match="built for"):
        layer.forward(np.zeros((2, 8, 8, 3), np.float32), True)


# -- forward -------------------------------------------------------------------------------------
def conv2d(plan: dict | None = None, **params):
    """A conv2d layer whose build() keeps the ``plan`` fields (ConvPlan) whatever its shapes say."""
    layer = create("layer", "conv2d", **params)
    layer.plan_overrides = dict(plan or {})
    return layer


@pytest.fixture(params=["rows", "transposed"])
def cols_layout(request):
    """The plan fields of either column-matrix layout (normally chosen by the channel count)."""
    return {"transposed_cols": request.param == "transposed"}


@pytest.mark.parametrize("seed", range(15))
def test_conv2d_forward_matches_loop_reference(seed, cols_layout):
    params, shape = random_config(seed)
    layer = conv2d(cols_layout, **params)
    layer.build(shape, np.random.default_rng(seed))
    x = np.random.default_rng(100 + seed).standard_normal((2, *shape)).astype(np.float32)
    y = layer.forward(x, False)
    bias = layer.params.get("bias")
    expected = reference_conv(x.astype(np.float64), layer.params["weight"].astype(np.float64),
                              None if bias is None else bias.astype(np.float64), layer.strides, layer.pads)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize("seed", range(15))
def test_conv2d_matches_the_reference_implementation(seed, cols_layout, parts):
    """The fast layer (any plan) gives the values of numpyml_conv.reference: forward, dx, grads."""
    from numpyml_conv.reference import conv2d_backward, conv2d_forward

    params, shape = random_config(seed)
    plan = {**cols_layout, "parts": parts, "min_parallel_macs": 0, "chunk_bytes": 1 if parts == 3 else 2**22,
            "col2im_chunk_bytes": 1 if parts == 3 else 2**22}
    layer = conv2d(plan, **params)
    layer.build(shape, np.random.default_rng(seed))
    rng = np.random.default_rng(200 + seed)
    x = rng.standard_normal((4, *shape))
    y = layer.forward(x.astype(np.float32), True)
    dz = rng.standard_normal(y.shape)
    dx = layer.backward(dz.astype(np.float32))
    weight = layer.params["weight"].astype(np.float64)
    bias = layer.params.get("bias")
    expected_y = conv2d_forward(x, weight, None if bias is None else bias.astype(np.float64), layer.strides,
                                layer.pads)
    expected_dx, expected_dweight, expected_dbias = conv2d_backward(x, weight, dz, layer.strides, layer.pads)
    np.testing.assert_allclose(y, expected_y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.grads["weight"], expected_dweight, rtol=1e-4, atol=1e-4)
    if params["bias"] == "tied":
        np.testing.assert_allclose(layer.grads["bias"], expected_dbias, rtol=1e-4, atol=1e-4)
    elif params["bias"] == "untied":
        np.testing.assert_allclose(layer.grads["bias"], dz.sum(axis=0), rtol=1e-4, atol=1e-4)


def test_the_reference_matches_direct_loops():
    from numpyml_conv.reference import conv2d_forward

    rng = np.random.default_rng(0)
    x, weight, bias = rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 2, 3, 4)), rng.standard_normal(4)
    for strides, pads in [((1, 1), (0, 0, 0, 0)), ((2, 1), (1, 2, 0, 1)), ((2, 3), (2, 2, 1, 1))]:
        np.testing.assert_allclose(conv2d_forward(x, weight, bias, strides, pads),
                                   reference_conv(x, weight, bias, strides, pads), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(10))
def test_conv2d_matches_pytorch(seed, cols_layout):
    torch = pytest.importorskip("torch")
    params, shape = random_config(seed)
    params["bias"] = "tied"
    layer = conv2d(cols_layout, **params)
    layer.build(shape, np.random.default_rng(seed))
    x = np.random.default_rng(seed).standard_normal((3, *shape))
    top, bottom, left, right = layer.pads
    xt = torch.nn.functional.pad(torch.from_numpy(x).permute(0, 3, 1, 2), (left, right, top, bottom))
    xt.requires_grad_(True)
    weight = torch.from_numpy(layer.params["weight"].astype(np.float64)).permute(3, 2, 0, 1).contiguous()
    weight.requires_grad_(True)
    yt = torch.nn.functional.conv2d(xt, weight, torch.from_numpy(layer.params["bias"].astype(np.float64)),
                                    stride=layer.strides)
    y = layer.forward(x.astype(np.float32), True)
    np.testing.assert_allclose(y, yt.permute(0, 2, 3, 1).detach().numpy(), rtol=1e-4, atol=1e-5)
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape)
    dx = layer.backward(dy.astype(np.float32))
    yt.backward(torch.from_numpy(dy).permute(0, 3, 1, 2))
    torch_dx = xt.grad.permute(0, 2, 3, 1).numpy()[:, top:top + shape[0], left:left + shape[1]]
    np.testing.assert_allclose(dx, torch_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.grads["weight"], weight.grad.permute(2, 3, 1, 0).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_in_chunks_matches_one_pass(cols_layout, padding):
    """Forward, weight gradient and input gradient are computed a chunk of samples at a time:
    chunks of 1-2 samples (with a short last chunk) give what one pass gives."""
    layer = conv2d(cols_layout, filters=3, kernel_size=3, padding=padding, activation="relu")
    layer.build((6, 5, 2), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 6, 5, 2)).astype(np.float32)
    whole = layer.forward(x, True)
    dy = rng.standard_normal(whole.shape).astype(np.float32)
    whole_dx = layer.backward(dy)
    whole_grads = {k: v.copy() for k, v in layer.grads.items()}
    layer.plan.chunk_bytes = 600  # chunks of one or two samples
    assert 1 <= layer._columns_chunk(np.dtype(np.float32)) <= 2
    np.testing.assert_allclose(layer.forward(x, False), whole, rtol=1e-6)
    np.testing.assert_allclose(layer.forward(x, True), whole, rtol=1e-6)
    # float32 sums in another order: an absolute error of a few ulps of the largest value
    # (|dx| reaches ~26 here, one ulp 2e-6), not of each small entry
    np.testing.assert_allclose(layer.backward(dy), whole_dx, rtol=1e-5, atol=1e-6 * np.abs(whole_dx).max())
    for name, grad in whole_grads.items():
        np.testing.assert_allclose(layer.grads[name], grad, rtol=1e-5, atol=1e-6 * np.abs(grad).max(), err_msg=name)


@pytest.mark.parametrize("seed", range(6))
def test_conv2d_gradients_in_small_chunks(seed, cols_layout):
    params, shape = random_config(seed)
    layer = conv2d({**cols_layout, "chunk_bytes": 1}, **params)  # one sample per chunk
    check_layer_gradients(layer, shape, batch=3, seed=seed)


@pytest.mark.parametrize("seed", range(5))
def test_conv2d_thread_parts_match_one_part(seed, cols_layout):
    """Forward, both input-gradient algorithms, weight and bias gradients split into thread parts
    of the batch (with chunks of one or two samples inside each) give what one part gives."""
    params, shape = random_config(seed)
    x = np.random.default_rng(seed + 1).standard_normal((7, *shape)).astype(np.float32)
    results = {}
    for parts in (1, 2, 3, 7):
        plan = {**cols_layout, "parts": parts, "min_parallel_macs": 0, "chunk_bytes": 1 if parts == 3 else 2**22}
        layer = conv2d(plan, **params)
        layer.build(shape, np.random.default_rng(seed))
        y = layer.forward(x, True)
        dy = np.random.default_rng(seed + 2).standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(dy)
        results[parts] = (y, dx, {k: v.copy() for k, v in layer.grads.items()})
    y1, dx1, grads1 = results[1]
    for parts, (y, dx, grads) in results.items():
        np.testing.assert_allclose(y, y1, rtol=1e-5, atol=1e-6, err_msg=f"forward, {parts} parts")
        np.testing.assert_allclose(dx, dx1, rtol=1e-5, atol=1e-5, err_msg=f"dx, {parts} parts")
        for name in grads1:
            np.testing.assert_allclose(grads[name], grads1[name], rtol=1e-4, atol=1e-5, err_msg=f"{name}, {parts}")


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize("seed", range(6))
def test_conv2d_gradients_in_thread_parts(parts, seed, cols_layout):
    params, shape = random_config(seed)
    plan = {**cols_layout, "parts": parts, "min_parallel_macs": 0, "chunk_bytes": 1}  # one sample per chunk
    check_layer_gradients(conv2d(plan, **params), shape, batch=4, seed=seed)


# -- gradients -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(16))
def test_conv2d_gradients_randomized(seed, cols_layout):
    params, shape = random_config(seed)
    layer = conv2d(cols_layout, **params)
    grads = check_layer_gradients(layer, shape, batch=2, seed=seed)
    assert set(grads) == {"x", *layer.params}


@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize("padding", ["same", "valid", [2, 1, 0, 2]])
def test_both_input_gradient_algorithms(transposed, padding, cols_layout):
    """dx as a transposed convolution (stride 1) and by col2im agree with finite differences."""
    plan = {**cols_layout, "input_gradient": "transposed" if transposed else "col2im"}
    layer = conv2d(plan, filters=3, kernel_size=[3, 2], padding=padding, bias="untied")
    if transposed and padding == [2, 1, 0, 2]:  # 2 columns of padding on the right: not less than the kernel's 2
        with pytest.raises(ValueError, match="stride 1 and padding < kernel"):
            layer.build((5, 4, 2), np.random.default_rng(0))
        return
    check_layer_gradients(layer, (5, 4, 2), batch=2, seed=3)


def test_conv2d_gradients_with_activation():
    layer = create("layer", "conv2d", filters=2, kernel_size=2, strides=[1, 2], padding="same", activation="tanh")
    check_layer_gradients(layer, (4, 5, 2), batch=2)


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize("seed", range(6))
def test_fused_relu_matches_the_activation_component(seed, parts, cols_layout):
    """activation = "relu" is applied by the layer in its parts (plan.relu): forward, dx and the
    gradients are those of the ReLU component applied after the convolution."""
    params, shape = random_config(seed)
    x = np.random.default_rng(seed).standard_normal((5, *shape)).astype(np.float32)
    results = []
    for relu in (True, False):
        plan = {**cols_layout, "relu": relu, "parts": parts, "min_parallel_macs": 0, "chunk_bytes": 1}
        layer = conv2d(plan, activation="relu", **params)
        layer.build(shape, np.random.default_rng(seed))
        assert layer.plan.relu == relu
        y = layer.forward(x, True)
        dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(np.float32)
        results.append((y, layer.backward(dy), {k: v.copy() for k, v in layer.grads.items()}))
    (y, dx, grads), (y_ref, dx_ref, grads_ref) = results
    assert (y >= 0).all() and (y == 0).any()
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)
    for name in grads:
        np.testing.assert_allclose(grads[name], grads_ref[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_the_plan_fuses_only_a_plain_relu():
    assert conv2d(filters=2, activation="relu").plan.relu is False  # before build: the default plan
    for activation, fused in [("relu", True), ({"type": "relu"}, True), ("tanh", False), (None, False),
                              ({"type": "leaky_relu", "alpha": 0.1}, False)]:
        layer = conv2d(filters=2, kernel_size=3, activation=activation)
        layer.build((5, 5, 1), np.random.default_rng(0))
        assert layer.plan.relu is fused, activation


@pytest.mark.parametrize("seed", range(4))
def test_conv2d_gradients_with_fused_relu(seed, cols_layout):
    params, shape = random_config(seed)
    plan = {**cols_layout, "parts": 2, "min_parallel_macs": 0, "chunk_bytes": 1, "col2im_chunk_bytes": 1}
    check_layer_gradients(conv2d(plan, activation="relu", **params), shape, batch=3, seed=seed)


def test_evaluation_forward_needs_no_relu_mask():
    layer = conv2d(filters=3, kernel_size=3, activation="relu")
    layer.build((6, 6, 2), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 2)).astype(np.float32)
    assert layer.plan.relu and (layer.forward(x, False) >= 0).all()
    assert layer._relu_mask is None and "relu_mask" not in layer._scratch._arrays


def test_conv2d_first_layer_skips_input_gradient_but_fills_grads():
    layer = create("layer", "conv2d", filters=2, kernel_size=3)
    layer.build((5, 5, 1), np.random.default_rng(0))
    layer.input_gradient = False
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1)).astype(np.float32)
    y = layer.forward(x, True)
    assert layer.backward(np.ones_like(y)) is None
    cols_sum = np.array([[x[:, a:a + 3, b:b + 3, 0].sum() for b in range(3)] for a in range(3)])
    np.testing.assert_allclose(layer.grads["weight"][:, :, 0, 0], cols_sum, rtol=1e-5)
    np.testing.assert_allclose(layer.grads["bias"], [y[..., 0].size] * 2)


def test_conv2d_keeps_float32_and_checks_order():
    layer = create("layer", "conv2d", filters=4, kernel_size=3, padding=1, activation="relu")
    layer.build((6, 6, 3), np.random.default_rng(0))
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, 6, 6, 4), np.float32))
    y = layer.forward(x, True)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.grads["weight"].dtype == np.float32
    assert dx.shape == x.shape


def test_scratch_buffers_grow_and_are_shared_between_shapes():
    """A smaller request (an evaluation chunk, a short last batch) reuses the front of the
    existing buffer, so a layer holds one buffer per name at its largest size, not one per shape."""
    from numpyml_conv._util import Scratch

    scratch = Scratch()
    big = scratch.get("cols", (6, 5), np.float32)
    small = scratch.get("cols", (4, 3), np.float32)
    assert small.shape == (4, 3) and small.flags.c_contiguous and np.shares_memory(big, small)
    bigger = scratch.get("cols", (8, 5), np.float32)
    assert bigger.shape == (8, 5) and not np.shares_memory(big, bigger)
    assert scratch.get("cols", (8, 5), np.float64).dtype == np.float64
    padded = scratch.get("padded", (2, 3), np.float32, zero_new=True)
    padded[0, 0] = 1.0
    assert scratch.get("padded", (2, 3), np.float32, zero_new=True)[0, 0] == 1.0  # same array back
    assert not scratch.get("padded", (3, 2), np.float32, zero_new=True).any()  # new shape: fresh zeros


def test_conv_holds_one_column_buffer_per_part_for_training_and_evaluation():
    layer = conv2d({"parts": 2, "min_parallel_macs": 0, "keep_columns_bytes": 0}, filters=4, kernel_size=3,
                   padding="same")
    layer.build((8, 8, 3), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((5, 8, 8, 3)).astype(np.float32)
    train_out = layer.forward(x, training=True)
    layer.backward(np.ones_like(train_out))
    eval_out = layer.forward(x[:2], training=False)
    np.testing.assert_allclose(eval_out, train_out[:2], rtol=1e-5, atol=1e-6)
    # one column buffer per thread part of the batch, together the size of the training batch
    cols = [workspace._arrays["cols"] for workspace in layer._workspaces]
    assert len(cols) == 2
    assert sum(array.size for array in cols) == 5 * 8 * 8 * 3 * 3 * 3


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("parts", [1, 2])
def test_kept_columns_give_the_gradients_of_rebuilt_ones(transposed, parts):
    """With plan.keep_columns_bytes, backward multiplies the columns forward built (one buffer per chunk,
    together the batch's columns) and gets bitwise the gradients of rebuilding them; evaluation keeps none."""
    x = np.random.default_rng(1).standard_normal((7, 9, 9, 3)).astype(np.float32)
    results = []
    for keep in (0, 2**30):
        plan = {"parts": parts, "min_parallel_macs": 0, "keep_columns_bytes": keep, "transposed_cols": transposed,
                "chunk_bytes": 2 * 7 * 7 * 27 * 4}  # chunks of 2 samples: several per part
        layer = conv2d(plan, filters=4, kernel_size=3, activation="relu")
        layer.build((9, 9, 3), np.random.default_rng(0))
        dy = np.random.default_rng(2).standard_normal((7, 7, 7, 4)).astype(np.float32)
        out = layer.forward(x, training=True)
        dx = layer.backward(dy)
        results.append((out, dx, {k: v.copy() for k, v in layer.grads.items()}))
        kept = [a for w in layer._workspaces for name, a in w._arrays.items() if name.startswith("kept_cols")]
        assert sum(a.size for a in kept) == (7 * 7 * 7 * 27 if keep else 0)
        assert layer._kept is None  # released by backward
        layer.forward(x, training=False)
        assert layer._kept is None
    (out0, dx0, g0), (out1, dx1, g1) = results
    np.testing.assert_array_equal(out0, out1)
    np.testing.assert_array_equal(dx0, dx1)
    for name in g0:
        np.testing.assert_array_equal(g0[name], g1[name])


@pytest.mark.parametrize("above, parts_used", [(1, 1), (0, 2)])
def test_small_products_stay_in_one_part(above, parts_used):
    """Below plan.min_parallel_macs multiply-adds the layer does not hand parts to threads."""
    macs = 3 * 6 * 6 * 3 * 3 * 2 * 4
    layer = conv2d({"parts": 2, "min_parallel_macs": macs + above}, filters=4, kernel_size=3)
    layer.build((8, 8, 2), np.random.default_rng(0))
    x = np.ones((3, 8, 8, 2), np.float32)
    layer.backward(np.ones_like(layer.forward(x, True)))
    assert len(layer._workspaces) == parts_used  # forward, weight gradient, input gradient


# -- Winograd's F(2x2, 3x3) ------------------------------------------------------------------------
@pytest.mark.parametrize("bias", ["tied", "untied", "none"])
@pytest.mark.parametrize("padding", ["same", "valid", 2, [0, 2, 2, 0]])
@pytest.mark.parametrize("parts, chunk, keep", [(1, 2**22, 0), (3, 1, 0), (2, 1, 2**30), (1, 2**22, 2**30)])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_winograd_matches_the_reference_implementation(bias, padding, parts, chunk, keep, activation):
    """plan.algorithm / input_gradient "winograd" give the reference's forward, dx and gradients, in
    any padding that keeps the sizes even, in thread parts, chunks of one sample, with kept tiles."""
    from numpyml_conv.reference import conv2d_backward, conv2d_forward

    plan = {"algorithm": "winograd", "input_gradient": "winograd", "parts": parts, "min_parallel_macs": 0,
            "tile_chunk_bytes": chunk, "keep_columns_bytes": keep}
    layer = conv2d(plan, filters=5, kernel_size=3, padding=padding, bias=bias, activation=activation,
                   bias_initializer={"type": "gaussian", "stddev": 0.5})
    layer.build((6, 8, 3), np.random.default_rng(0))
    assert (layer.plan.algorithm, layer.plan.input_gradient) == ("winograd", "winograd")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 8, 3))
    y = layer.forward(x.astype(np.float32), True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy.astype(np.float32))
    weight = layer.params["weight"].astype(np.float64)
    b = layer.params.get("bias")
    z = conv2d_forward(x, weight, None if b is None else b.astype(np.float64), layer.strides, layer.pads)
    dz = dy * (z > 0) if activation else dy
    expected_dx, expected_dweight, expected_dbias = conv2d_backward(x, weight, dz, layer.strides, layer.pads)
    np.testing.assert_allclose(y, np.maximum(z, 0) if activation else z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.grads["weight"], expected_dweight, rtol=1e-4, atol=1e-4)
    if bias == "tied":
        np.testing.assert_allclose(layer.grads["bias"], expected_dbias, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm, input_gradient", [("winograd", "col2im"), ("winograd", "transposed")])
def test_winograd_mixes_with_the_other_algorithms(algorithm, input_gradient):
    """Winograd's forward and weight gradient with either im2col input gradient."""
    from numpyml_conv.reference import conv2d_backward, conv2d_forward

    layer = conv2d({"algorithm": algorithm, "input_gradient": input_gradient}, filters=4, kernel_size=3,
                   padding="same")
    layer.build((4, 6, 9), np.random.default_rng(0))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 6, 9))
    dz = rng.standard_normal((3, 4, 6, 4))
    y = layer.forward(x.astype(np.float32), True)
    dx = layer.backward(dz.astype(np.float32))
    weight = layer.params["weight"].astype(np.float64)
    np.testing.assert_allclose(y, conv2d_forward(x, weight, layer.params["bias"].astype(np.float64), (1, 1),
                                                 layer.pads), rtol=1e-4, atol=1e-5)
    expected_dx, expected_dweight, _ = conv2d_backward(x, weight, dz, (1, 1), layer.pads)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.grads["weight"], expected_dweight, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_winograd_gradients_in_float64(seed):
    """Numerical gradient check of the Winograd layer (float64 end to end, fused ReLU, two parts)."""
    plan = {"algorithm": "winograd", "input_gradient": "winograd", "parts": 2, "min_parallel_macs": 0,
            "tile_chunk_bytes": 1}
    layer = conv2d(plan, filters=3, kernel_size=3, padding="same", activation="relu")
    check_layer_gradients(layer, (4, 6, 2), batch=3, seed=seed)


def test_the_plan_picks_winograd_for_3x3_stride_1_even_sizes():
    def plan(shape, **params):
        layer = create("layer", "conv2d", filters=16, **params)
        layer.build(shape, np.random.default_rng(0))
        return layer.plan.algorithm, layer.plan.input_gradient

    assert plan((32, 32, 32), kernel_size=3, padding="same") == ("winograd", "winograd")
    assert plan((16, 16, 64), kernel_size=3, padding="valid") == ("winograd", "winograd")
    assert plan((32, 32, 3), kernel_size=3, padding="same")[0] == "im2col"  # few channels: im2col
    assert plan((15, 16, 32), kernel_size=3, padding="same")[0] == "im2col"  # odd image
    assert plan((16, 16, 32), kernel_size=3, padding=[1, 0, 1, 1])[0] == "im2col"  # odd output
    assert plan((16, 16, 32), kernel_size=3, strides=2, padding="same")[0] == "im2col"
    assert plan((16, 16, 32), kernel_size=5, padding="same")[0] == "im2col"


@pytest.mark.parametrize("field", ["algorithm", "input_gradient"])
def test_winograd_on_a_layer_it_does_not_fit_is_refused(field):
    layer = conv2d({field: "winograd"}, filters=2, kernel_size=3, padding="valid")
    with pytest.raises(ValueError, match="Winograd's F\\(2x2, 3x3\\) needs a 3x3 kernel"):
        layer.build((7, 8, 2), np.random.default_rng(0))


def test_winograd_input_gradient_needs_winograd_tiles():
    layer = conv2d({"input_gradient": "winograd", "algorithm": "im2col"}, filters=2, kernel_size=3, padding="same")
    with pytest.raises(ValueError, match='input_gradient "winograd" needs algorithm "winograd"'):
        layer.build((8, 8, 2), np.random.default_rng(0))


def test_winograd_transforms_are_adjoint_pairs():
    """<T(a), b> == <a, T*(b)> for the output transform and its adjoint, and for the weight's."""
    from numpyml_conv import winograd

    rng = np.random.default_rng(0)
    n, th, tw, k, c = 2, 3, 4, 5, 3
    products = rng.standard_normal((16, n * th * tw, k))
    dz = rng.standard_normal((n, 2 * th, 2 * tw, k))
    y = winograd.output_from_tiles(products, np.empty((2, 4, n, th, tw, k)), np.empty_like(dz))
    dm = winograd.output_gradient_tiles(dz, np.empty((4, n, th, 2 * tw, k)), np.empty((4, 4, n, th, tw, k)))
    assert np.vdot(y, dz) == pytest.approx(np.vdot(products, dm), rel=1e-12)
    padded = rng.standard_normal((n, 2 * th + 2, 2 * tw + 2, c))
    rows = np.empty((4, n, th, 2 * tw + 2, c))
    tiles = winograd.input_tiles(padded, rows, np.empty((4, 4, n, th, tw, c)))
    tile_grads = rng.standard_normal(tiles.shape)
    adjoint = winograd.input_tiles_adjoint(tile_grads, rows, np.empty_like(padded))
    assert np.vdot(tiles, tile_grads) == pytest.approx(np.vdot(padded, adjoint), rel=1e-12)
    weight = rng.standard_normal((3, 3, c, k))
    du = rng.standard_normal((16, c, k))
    assert np.vdot(winograd.transform_weight(weight), du) == pytest.approx(
        np.vdot(weight, winograd.weight_gradient(du)), rel=1e-12)
