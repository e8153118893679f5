"""The swish activation and the learned-slope swish layer, checked with numpyml's test kit."""

import functools

import numpy as np
import pytest

from numpyml_kit import testing

from numpyml_swish import LearnedSwish, Swish


@pytest.mark.parametrize("input_shape", [(4,), (3, 3, 2)])
@pytest.mark.parametrize("beta", [1.0, 2.5, 0.0])
def test_swish_contract_and_gradients(input_shape, beta):
    # shapes, dtypes (float32 in -> float32 out), params/grads, determinism, float64 gradient check
    testing.check_layer(functools.partial(Swish, beta=beta), input_shape=input_shape)


@pytest.mark.parametrize("input_shape", [(4,), (3, 3, 2)])
def test_learned_swish_contract_and_gradients(input_shape):
    result = testing.check_layer(functools.partial(LearnedSwish, initial_beta=0.7), input_shape=input_shape)
    assert result["parameters"] == input_shape[-1]


def test_values():
    x = np.array([[-3.0, -1.0, 0.0, 1.0, 40.0]])
    np.testing.assert_allclose(Swish().forward(x, False), x / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(Swish(beta=0.0).forward(x, False), x / 2)
    assert np.isfinite(Swish(beta=100.0).forward(np.array([[-1e4, 1e4]], dtype=np.float32), False)).all()


def test_learned_swish_starts_as_swish():
    layer = LearnedSwish(initial_beta=1.5)
    layer.build((5,), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x, True), Swish(beta=1.5).forward(x, True), rtol=1e-6)


def test_swish_trains_as_an_activation(numpyml_tiny_experiment):
    summary, run = numpyml_tiny_experiment("activation", Swish)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]


def test_learned_swish_trains_as_a_layer(numpyml_tiny_experiment):
    summary, run = numpyml_tiny_experiment("layer", LearnedSwish)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    (beta,) = [v for k, v in run.model.params().items() if k.endswith(".beta")]
    assert not np.all(beta == 1.0)  # it learned
