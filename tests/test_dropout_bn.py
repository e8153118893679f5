"""dropout and batch_norm: behaviour in training and evaluation, gradients, running statistics
saved with the model."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_layer_gradients
from numpyml_core import ConfigError, create
from numpyml_core.model import Model
from numpyml_core.serialization import load_model, save_model


# -- dropout -------------------------------------------------------------------------------------
def test_dropout_is_the_identity_in_evaluation():
    layer = create("layer", "dropout", rate=0.5)
    layer.build((10,), np.random.default_rng(0))
    x = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    y = layer.forward(x, False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))


def test_dropout_drops_at_the_rate_and_scales_the_survivors():
    layer = create("layer", "dropout", rate=0.3)
    layer.build((50, 50, 4), np.random.default_rng(0))
    x = np.ones((8, 50, 50, 4), np.float32)
    y = layer.forward(x, True)
    assert y.dtype == np.float32
    kept = y != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)  # inverted dropout: mean preserved
    assert abs(y.mean() - 1) < 0.02
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy), dy * y, rtol=1e-6)  # same mask, same scale


def test_dropout_masks_come_from_the_build_generator():
    def masks(seed):
        layer = create("layer", "dropout", rate=0.5)
        layer.build((20,), np.random.default_rng(seed))
        return [layer.forward(np.ones((3, 20)), True) for _ in range(2)]

    first, again, other = masks(7), masks(7), masks(8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], other[0])


def test_dropout_gradients_with_a_fixed_mask():
    layer = create("layer", "dropout", rate=0.4)
    layer.build((3, 4, 2), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 2))
    layer.forward(x, True)
    mask = layer._mask
    dy = np.random.default_rng(2).standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * mask)  # d(x*mask)/dx = mask


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ConfigError, match="rate"):
        create("layer", "dropout", rate=rate)


# -- batch norm ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_batch_norm_gradients(shape, training, seed):
    layer = create("layer", "batch_norm", gamma_initializer={"type": "gaussian", "mean": 1.0, "stddev": 0.5},
                   beta_initializer={"type": "gaussian", "stddev": 0.5})
    layer.build(shape, np.random.default_rng(seed))
    if not training:  # non-trivial running statistics
        layer.state["moving_mean"][...] = np.random.default_rng(seed).standard_normal(shape[-1])
        layer.state["moving_variance"][...] = np.random.default_rng(seed).uniform(0.5, 2, shape[-1])
    x = np.random.default_rng(seed).standard_normal((4, *shape)) * 2 + 1
    grads = check_layer_gradients(layer, shape, x=x, training=training, build=False, atol=1e-5)
    assert set(grads) == {"x", "gamma", "beta"}


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_batch_norm_without_center_or_scale(center, scale):
    layer = create("layer", "batch_norm", center=center, scale=scale)
    grads = check_layer_gradients(layer, (3,), batch=5, atol=1e-5)
    assert set(layer.params) == {name for name, on in (("gamma", scale), ("beta", center)) if on}
    assert set(grads) == {"x", *layer.params}


def test_batch_norm_normalizes_per_channel_in_training():
    layer = create("layer", "batch_norm", epsilon=1e-5)
    layer.build((6, 6, 3), np.random.default_rng(0))
    x = (np.random.default_rng(0).standard_normal((8, 6, 6, 3)) * [1, 5, 0.1] + [3, -2, 10]).astype(np.float32)
    y = layer.forward(x, True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_batch_norm_running_statistics_follow_keras_momentum():
    layer = create("layer", "batch_norm", momentum=0.9, epsilon=1e-3)
    layer.build((2,), np.random.default_rng(0))
    mean_before = layer.state["moving_mean"]
    x = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 60.0]], np.float32)
    layer.forward(x, True)
    assert layer.state["moving_mean"] is mean_before  # updated in place: the model's load_tensors relies on it
    np.testing.assert_allclose(layer.state["moving_mean"], 0.1 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(layer.state["moving_variance"], 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-6)
    before = {k: v.copy() for k, v in layer.state.items()}
    y = layer.forward(x, False)  # evaluation: uses, never changes, the running statistics
    for key, value in layer.state.items():
        np.testing.assert_array_equal(value, before[key])
    expected = (x - before["moving_mean"]) / np.sqrt(before["moving_variance"] + 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_batch_norm_running_statistics_converge_to_the_data():
    layer = create("layer", "batch_norm", momentum=0.5)
    layer.build((4, 4, 2), np.random.default_rng(0))
    rng = np.random.default_rng(0)
    for _ in range(30):
        layer.forward((rng.standard_normal((16, 4, 4, 2)) * [2, 0.5] + [1, -3]).astype(np.float32), True)
    np.testing.assert_allclose(layer.state["moving_mean"], [1, -3], atol=0.3)
    np.testing.assert_allclose(layer.state["moving_variance"], [4, 0.25], rtol=0.3)


def test_batch_norm_state_is_saved_with_the_model(tmp_path):
    configs = [{"type": "conv2d", "filters": 3, "kernel_size": 3}, {"type": "batch_norm", "momentum": 0.5},
               {"type": "flatten"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 2}]
    layers = [create("layer", c["type"], **{k: v for k, v in c.items() if k != "type"}) for c in configs]
    model = Model(layers, configs)
    model.build((5, 5, 1), np.random.default_rng(0))
    assert set(model.state()) == {"1.moving_mean", "1.moving_variance"}
    x = np.random.default_rng(0).standard_normal((6, 5, 5, 1)).astype(np.float32) + 2
    model.logits(x, training=True)  # moves the running statistics
    expected = model.predict(x)
    save_model(tmp_path / "m.safetensors", model, {"layers": configs, "input_shape": [5, 5, 1]})
    loaded, _ = load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.layers[1].state["moving_mean"], model.layers[1].state["moving_mean"])
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-6)


@pytest.mark.parametrize("params, message", [({"momentum": 1.0}, "momentum"), ({"epsilon": 0.0}, "epsilon")])
def test_batch_norm_rejects_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        create("layer", "batch_norm", **params)
