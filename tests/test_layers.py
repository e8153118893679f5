"""Built-in layers and activations: gradients, shapes, dtypes, errors, registration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gradcheck import check_layer_gradients
from numpyml_core import ConfigError, create
from numpyml_core.model import Model

ACTIVATIONS = ["identity", "sigmoid", "tanh", "softmax", "relu", "leaky_relu", "gelu"]


def away_from_zero(shape, seed=1):
    """Random inputs at least 0.1 from 0 (relu's kink), so finite differences are exact."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x) * 0.1 + x, x)


# -- registration -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_are_registered_as_activation_and_layer(name):
    as_activation = create("activation", name)
    as_layer = create("layer", name)
    assert type(as_activation) is type(as_layer)
    assert as_layer.params == {} and as_layer.grads == {}
    assert as_layer.build((4, 5), np.random.default_rng(0)) == (4, 5)
    assert as_layer.fusable_as == ("softmax" if name == "softmax" else None)


def test_activation_instances_do_not_share_param_dicts():
    a, b = create("activation", "relu"), create("activation", "relu")
    assert a.params is not b.params


# -- activations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients(name):
    layer = create("layer", name)
    check_layer_gradients(layer, (4,), batch=3, x=away_from_zero((3, 4)))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients_on_images(name):
    layer = create("layer", name)
    check_layer_gradients(layer, (2, 3, 2), batch=2, x=away_from_zero((2, 2, 3, 2)))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_keep_float32(name):
    layer = create("layer", name)
    layer.build((5,), np.random.default_rng(0))
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    y = layer.forward(x, True)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_activation_values():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(create("layer", "relu").forward(x, False), [[0, 0, 0, 0.5, 3]])
    np.testing.assert_allclose(
        create("layer", "leaky_relu", alpha=0.1).forward(x, False), [[-0.2, -0.05, 0, 0.5, 3]]
    )
    np.testing.assert_allclose(create("layer", "sigmoid").forward(x, False), 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(create("layer", "tanh").forward(x, False), np.tanh(x))
    np.testing.assert_array_equal(create("layer", "identity").forward(x, False), x)
    p = create("layer", "softmax").forward(x, False)
    np.testing.assert_allclose(p, np.exp(x) / np.exp(x).sum(), rtol=1e-12)


def test_leaky_relu_rejects_negative_alpha():
    with pytest.raises(ConfigError, match="alpha"):
        create("activation", "leaky_relu", alpha=-0.5)


def test_sigmoid_is_stable_for_huge_inputs():
    layer = create("layer", "sigmoid")
    for dtype in (np.float32, np.float64):
        x = np.array([[-1e4, -800.0, -100.0, 0.0, 100.0, 800.0, 1e4]], dtype=dtype)
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
            warnings.simplefilter("error")
            y = layer.forward(x, True)
            dx = layer.backward(np.ones_like(y))
        assert y.dtype == dtype
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
        assert y[0, 0] == 0.0 and y[0, -1] == 1.0 and y[0, 3] == 0.5
        assert 0 < y[0, 2] < 1e-40 or dtype == np.float32  # tiny but exact in float64


def test_softmax_is_per_sample_and_shift_invariant():
    layer = create("layer", "softmax")
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        p = layer.forward(x, False)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(p[0], layer.forward(x[:1] - 1000, False)[0], rtol=1e-6)


def test_softmax_backward_is_full_jacobian_product():
    layer = create("layer", "softmax")
    x = np.random.default_rng(0).standard_normal((2, 4))
    p = layer.forward(x, True)
    dy = np.random.default_rng(1).standard_normal((2, 4))
    dx = layer.backward(dy)
    for n in range(2):
        jacobian = np.diag(p[n]) - np.outer(p[n], p[n])
        np.testing.assert_allclose(dx[n], jacobian @ dy[n], rtol=1e-12, atol=1e-14)


def test_gradcheck_catches_a_wrong_gradient():
    layer = create("layer", "tanh")
    right = layer.backward
    layer.backward = lambda dy: 1.01 * right(dy)
    with pytest.raises(AssertionError, match="dx"):
        check_layer_gradients(layer, (3,))
    dense = create("layer", "dense", units=2)
    dense_backward = dense.backward

    def wrong_bias(dy):
        dx = dense_backward(dy)
        dense.grads["bias"] *= 2
        return dx

    dense.backward = wrong_bias
    with pytest.raises(AssertionError, match="bias"):
        check_layer_gradients(dense, (3,))


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="before forward"):
        create("layer", "relu").backward(np.ones((1, 2)))


# -- dense ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(use_bias):
    layer = create("layer", "dense", units=3, use_bias=use_bias)
    grads = check_layer_gradients(layer, (4,), batch=5)
    assert set(grads) == ({"x", "weight", "bias"} if use_bias else {"x", "weight"})


@pytest.mark.parametrize("activation", ACTIVATIONS + [{"type": "leaky_relu", "alpha": 0.3}])
def test_dense_gradients_with_activation(activation):
    layer = create("layer", "dense", units=4, activation=activation, bias_initializer="ones")
    # seed 3 keeps every pre-activation far (> 1e-3) from relu's kink at 0
    check_layer_gradients(layer, (3,), batch=4, seed=3)


def test_dense_shapes_params_and_dtype():
    layer = create("layer", "dense", units=7)
    assert layer.build((5,), np.random.default_rng(0)) == (7,)
    assert layer.params["weight"].shape == (5, 7) and layer.params["weight"].dtype == np.float32
    assert layer.params["bias"].shape == (7,) and layer.params["bias"].dtype == np.float32
    assert not layer.params["bias"].any()  # zeros by default
    assert {k: v.shape for k, v in layer.grads.items()} == {"weight": (5, 7), "bias": (7,)}
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    y = layer.forward(x, True)
    assert y.shape == (4, 7) and y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == (4, 5) and dx.dtype == np.float32
    np.testing.assert_allclose(y, x @ layer.params["weight"] + layer.params["bias"], rtol=1e-6)


def test_dense_backward_writes_grads_in_place():
    layer = create("layer", "dense", units=3)
    layer.build((2,), np.random.default_rng(0))
    weight_grad, bias_grad = layer.grads["weight"], layer.grads["bias"]
    x = np.ones((4, 2), dtype=np.float32)
    layer.forward(x, True)
    layer.backward(np.ones((4, 3), dtype=np.float32))
    assert layer.grads["weight"] is weight_grad and layer.grads["bias"] is bias_grad
    np.testing.assert_array_equal(weight_grad, np.full((2, 3), 4.0))
    np.testing.assert_array_equal(bias_grad, np.full(3, 4.0))


def test_dense_reads_params_at_call_time():
    """The optimizer updates params in place, and the gradient check rebinds them."""
    layer = create("layer", "dense", units=2)
    layer.build((2,), np.random.default_rng(0))
    layer.params["weight"][...] = np.eye(2)
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(layer.forward(x, False), x)
    layer.params["weight"] = 2 * np.eye(2, dtype=np.float32)
    np.testing.assert_array_equal(layer.forward(x, False), 2 * x)


def test_dense_initializers_are_components():
    layer = create(
        "layer", "dense", units=3,
        weight_initializer={"type": "constant", "value": 0.5}, bias_initializer="ones",
    )
    layer.build((2,), np.random.default_rng(0))
    np.testing.assert_array_equal(layer.params["weight"], np.full((2, 3), 0.5, dtype=np.float32))
    np.testing.assert_array_equal(layer.params["bias"], np.ones(3, dtype=np.float32))


def test_dense_default_initializer_is_seeded():
    a, b = create("layer", "dense", units=4), create("layer", "dense", units=4)
    a.build((6,), np.random.default_rng(5))
    b.build((6,), np.random.default_rng(5))
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    assert a.params["weight"].std() > 0
    limit = np.sqrt(6 / (6 + 4))  # glorot uniform
    assert np.abs(a.params["weight"]).max() <= limit


def test_dense_activation_table_and_detaching():
    layer = create("layer", "dense", units=3, activation={"type": "leaky_relu", "alpha": 0.5})
    assert layer.activation.alpha == 0.5
    layer.build((2,), np.random.default_rng(0))
    layer.params["weight"][...] = -1
    x = np.ones((1, 2), dtype=np.float32)
    np.testing.assert_allclose(layer.forward(x, False), np.full((1, 3), -1.0))
    layer.activation = None  # what the model does with a fusable head
    np.testing.assert_allclose(layer.forward(x, False), np.full((1, 3), -2.0))
    np.testing.assert_allclose(layer.backward(np.ones((1, 3), dtype=np.float32)), np.full((1, 2), -3.0))


def test_model_detaches_dense_softmax_head():
    model = Model([create("layer", "dense", units=3, activation="softmax")])
    model.build((4,), np.random.default_rng(0))
    assert model.layers[0].activation is None and model.head.fusable_as == "softmax"
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1.0, rtol=1e-6)
    loss = model.loss_and_gradients(x, np.array([0, 1, 2, 0, 1]), create("cost", "cross_entropy"))
    assert np.isfinite(loss) and model.grads()["0.weight"].any()


@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic"])
def test_model_gradient_scale_scales_every_gradient_not_the_loss(cost):
    """``loss_and_gradients(..., scale=s)`` leaves ``s`` times the gradients (the backward pass is
    linear in the loss gradient); by a power of two exactly, by other factors up to rounding."""
    model = Model([create("layer", "dense", units=6, activation="tanh"),
                   create("layer", "dense", units=3, activation="softmax")])
    model.build((4,), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1]) if cost == "cross_entropy" else np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    cost = create("cost", cost)
    loss = model.loss_and_gradients(x, y, cost)
    plain = {name: grad.copy() for name, grad in model.grads().items()}
    assert model.loss_and_gradients(x, y, cost, scale=0.25) == loss
    for name, grad in model.grads().items():
        np.testing.assert_array_equal(grad, 0.25 * plain[name], err_msg=name)
        assert grad.dtype == np.float32
    assert model.loss_and_gradients(x, y, cost, scale=0.3) == loss
    for name, grad in model.grads().items():
        np.testing.assert_allclose(grad, 0.3 * plain[name], rtol=1e-5, atol=1e-8, err_msg=name)


def test_dense_needs_flat_input():
    layer = create("layer", "dense", units=3)
    with pytest.raises(ValueError, match="flatten"):
        layer.build((28, 28, 1), np.random.default_rng(0))
    model = Model([create("layer", "dense", units=3)], [{"type": "dense"}])
    with pytest.raises(ValueError, match=r"layer #1 \(dense\).*flatten"):
        model.build((4, 4, 1), np.random.default_rng(0))


@pytest.mark.parametrize("units", [0, -3])
def test_dense_rejects_bad_units(units):
    with pytest.raises(ConfigError, match="units"):
        create("layer", "dense", units=units)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"activation": "relux"}, "did you mean 'relu'"),
        ({"activation": {"alpha": 0.1}}, "'type'"),
        ({"activation": {"type": "leaky_relu", "slope": 0.1}}, "unknown parameter 'slope'"),
        ({"weight_initializer": "glorot"}, "weight_initializer.*unknown initializer 'glorot'"),
    ],
)
def test_dense_component_errors_are_clear(params, message):
    with pytest.raises(ConfigError, match=message):
        create("layer", "dense", units=3, **params)


# -- flatten and reshape ------------------------------------------------------------------------
def test_flatten_shapes_and_gradients():
    layer = create("layer", "flatten")
    assert layer.build((4, 3, 2), np.random.default_rng(0)) == (24,)
    x = np.arange(2 * 24, dtype=np.float32).reshape(2, 4, 3, 2)
    y = layer.forward(x, True)
    assert y.shape == (2, 24)
    np.testing.assert_array_equal(y[1], x[1].ravel())
    np.testing.assert_array_equal(layer.backward(y), x)
    check_layer_gradients(create("layer", "flatten"), (2, 3, 1), batch=2)


def test_flatten_rejects_other_shapes_than_built():
    layer = create("layer", "flatten")
    layer.build((4, 3), np.random.default_rng(0))
    with pytest.raises(ValueError, match="built for"):
        layer.forward(np.zeros((2, 3, 4)), False)


@pytest.mark.parametrize(
    "input_shape, target, output",
    [((12,), [3, 4], (3, 4)), ((12,), [-1, 2], (6, 2)), ((2, 3, 2), [-1], (12,)), ((6,), [1, -1, 3], (1, 2, 3))],
)
def test_reshape_build_shapes(input_shape, target, output):
    layer = create("layer", "reshape", target_shape=target)
    assert layer.build(input_shape, np.random.default_rng(0)) == output
    y = layer.forward(np.zeros((5, *input_shape)), False)
    assert y.shape == (5, *output)


def test_reshape_gradients():
    check_layer_gradients(create("layer", "reshape", target_shape=[2, -1]), (6,), batch=2)


@pytest.mark.parametrize(
    "input_shape, target, message",
    [((12,), [5, 2], r"\(12,\) \(12 values\) into \[5, 2\] \(10 values\)"), ((12,), [-1, 5], "not a multiple of 5")],
)
def test_reshape_rejects_incompatible_sizes(input_shape, target, message):
    layer = create("layer", "reshape", target_shape=target)
    with pytest.raises(ValueError, match=message):
        layer.build(input_shape, np.random.default_rng(0))


@pytest.mark.parametrize(
    "target, message", [([], "at least one"), ([-1, -1], "at most one -1"), ([3, 0], "positive")]
)
def test_reshape_rejects_bad_target_shapes(target, message):
    with pytest.raises(ConfigError, match=message):
        create("layer", "reshape", target_shape=target)


def test_reshape_target_shape_is_validated_by_the_schema():
    with pytest.raises(ConfigError, match="target_shape"):
        create("layer", "reshape", target_shape=[2, "a"])
