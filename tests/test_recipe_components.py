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
