"""Components for fast CIFAR-10 recipes (issue 21): gelu, scale, dirac, optimizer parameter groups,
weight averaging (ema/lookahead), alternating flips, test-time augmentation, patch whitening."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from numpyml_core import ConfigError, create
from numpyml_kit import testing


# -- gelu and scale --------------------------------------------------------------------------------
def test_gelu_values_match_the_tanh_form_and_are_close_to_the_erf_form():
    x = np.linspace(-6, 6, 241)[None, :]
    y = create("layer", "gelu").forward(x, False)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-15)
    exact = np.array([[v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x[0]]])
    assert np.max(np.abs(y - exact)) < 5e-4


def test_gelu_passes_the_layer_contract():
    testing.check_layer(lambda: create("layer", "gelu"), input_shape=(3, 3, 2))


def test_scale_multiplies_and_passes_the_layer_contract():
    layer = create("layer", "scale", factor=0.25)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(layer.forward(x, True), x * np.float32(0.25))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.full_like(x, 0.25))
    testing.check_layer(functools.partial(create, "layer", "scale", factor=-1 / 9), input_shape=(4,))


@pytest.mark.parametrize("factor", [0.0, math.inf])
def test_scale_rejects_bad_factors(factor):
    with pytest.raises(ConfigError, match="factor"):
        create("layer", "scale", factor=factor)


# -- dirac -----------------------------------------------------------------------------------------
def test_dirac_makes_the_first_output_channels_an_identity():
    init = create("initializer", "dirac", others="zeros")
    w = init((3, 3, 2, 4), np.random.default_rng(0), np.float32)
    x = np.random.default_rng(1).standard_normal((2, 5, 5, 2)).astype(np.float32)
    conv = create("layer", "conv2d", filters=4, kernel_size=3, padding="same", bias="none",
                  weight_initializer={"type": "dirac", "others": "zeros"})
    conv.build((5, 5, 2), np.random.default_rng(0))
    np.testing.assert_array_equal(conv.params["weight"], w)
    y = conv.forward(x, False)
    np.testing.assert_allclose(y[..., :2], x, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y[..., 2:], 0)


def test_dirac_keeps_the_other_initializer_for_the_remaining_channels():
    rng = np.random.default_rng(0)
    w = create("initializer", "dirac", gain=2.0, others="he")((2, 2, 3, 5), rng, np.float32)
    reference = create("initializer", "he")((2, 2, 3, 5), np.random.default_rng(0), np.float32)
    np.testing.assert_array_equal(w[..., 3:], reference[..., 3:])
    assert np.count_nonzero(w[..., :3]) == 3 and np.all(w[1, 1, np.arange(3), np.arange(3)] == 2.0)
    dense = create("initializer", "dirac", others="zeros")((3, 2), rng, np.float32)
    np.testing.assert_array_equal(dense, np.eye(3, 2, dtype=np.float32))


def test_dirac_passes_the_initializer_contract():
    testing.check_initializer(lambda: create("initializer", "dirac"))
