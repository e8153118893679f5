"""Built-in initializers: shapes, dtypes, variances, fans, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from numpyml_core import ConfigError, create
from numpyml_initializers.initializers import fans

NAMES = ["zeros", "ones", "constant", "gaussian", "lecun", "xavier", "he"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(7,), (5, 3), (3, 3, 2, 4)])
def test_shape_and_float32(name, shape):
    values = create("initializer", name)(shape, np.random.default_rng(0))
    assert values.shape == shape and values.dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_float64_on_request(name):
    assert create("initializer", name)((3, 2), np.random.default_rng(0), np.float64).dtype == np.float64


@pytest.mark.parametrize("name", ["gaussian", "lecun", "xavier", "he"])
def test_deterministic_under_a_seeded_rng(name):
    init = create("initializer", name)
    a = init((20, 10), np.random.default_rng(42))
    b = init((20, 10), np.random.default_rng(42))
    c = init((20, 10), np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_constants():
    rng = np.random.default_rng(0)
    assert not create("initializer", "zeros")((2, 3), rng).any()
    np.testing.assert_array_equal(create("initializer", "ones")((2, 3), rng), np.ones((2, 3)))
    np.testing.assert_array_equal(create("initializer", "constant", value=-0.25)((4,), rng), np.full(4, -0.25))
    assert not create("initializer", "constant")((4,), rng).any()


@pytest.mark.parametrize(
    "shape, expected",
    [((), (1, 1)), ((10,), (10, 10)), ((784, 100), (784, 100)), ((3, 3, 16, 32), (144, 288)),
     ((5, 1, 8), (5, 40))],
)
def test_fans(shape, expected):
    assert fans(shape) == expected


SHAPE = (300, 200)  # fan_in 300, fan_out 200
VARIANCE = {"lecun": 1 / 300, "xavier": 2 / 500, "he": 2 / 300}


@pytest.mark.parametrize("name", list(VARIANCE))
@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_variance_scaling(name, distribution):
    values = create("initializer", name, distribution=distribution)(SHAPE, np.random.default_rng(1))
    variance = VARIANCE[name]
    assert abs(values.mean()) < 0.02 * np.sqrt(variance)  # 60000 samples: standard error 0.004 sd
    assert values.var() == pytest.approx(variance, rel=0.03)
    if distribution == "uniform":
        limit = np.sqrt(3 * variance)
        assert np.abs(values).max() <= limit
        assert np.abs(values).max() > 0.99 * limit
    else:
        assert np.abs(values).max() > np.sqrt(3 * variance) * 1.5  # tails: not a uniform


def test_conv_fans_are_used():
    values = create("initializer", "he")((3, 3, 16, 32), np.random.default_rng(2))
    assert values.var() == pytest.approx(2 / 144, rel=0.05)


def test_default_distributions():
    assert create("initializer", "xavier").distribution == "uniform"
    assert create("initializer", "lecun").distribution == "normal"
    assert create("initializer", "he").distribution == "normal"


def test_gaussian():
    values = create("initializer", "gaussian", mean=1.0, stddev=0.5)((400, 100), np.random.default_rng(3))
    assert values.mean() == pytest.approx(1.0, abs=0.01)
    assert values.std() == pytest.approx(0.5, rel=0.02)
    assert create("initializer", "gaussian")((400, 100), np.random.default_rng(3)).std() == pytest.approx(
        0.01, rel=0.02
    )


def test_bad_parameters():
    with pytest.raises(ConfigError, match="'normal' or 'uniform'"):
        create("initializer", "he", distribution="truncated")
    with pytest.raises(ConfigError, match="stddev"):
        create("initializer", "gaussian", stddev=-1.0)


@pytest.mark.parametrize("name", ["gaussian", "xavier", "he"])
def test_a_draw_larger_than_the_available_memory_is_refused_before_allocating(name, monkeypatch):
    """Linux would grant the allocation (overcommit) and kill the process filling it."""
    import numpyml_initializers.initializers as initializers

    monkeypatch.setattr(initializers, "available_memory", lambda: 10_000_000)
    with pytest.raises(MemoryError, match=r"drawing a 1000x1000 parameter needs 12 MB, 10 MB are available"):
        create("initializer", name)((1000, 1000), np.random.default_rng(0))
    assert create("initializer", name)((100, 100), np.random.default_rng(0)).shape == (100, 100)  # 1.2 MB: fits


def test_available_memory_reads_the_system():
    import os

    from numpyml_initializers.initializers import available_memory

    available = available_memory()
    if os.path.exists("/proc/meminfo"):
        assert isinstance(available, int) and 1 << 20 < available < 1 << 50
    else:
        assert available is None
