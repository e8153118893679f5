"""Recycled outputs (protocol member ``recycle_outputs``): a model lets its layers return reused buffers from
training calls; conv2d and pool2d then allocate no output per step, and train exactly as with fresh arrays."""

from __future__ import annotations

import numpy as np
import pytest

from numpyml_core import create
from numpyml_core.model import Model
from numpyml_core.protocols import RecyclingLayer

LAYERS = [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"},
    {"type": "pool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "tanh"},
    {"type": "pool2d", "pool_size": 3, "strides": 2, "padding": "same"},
    {"type": "conv2d", "filters": 4, "kernel_size": 2, "padding": 1},  # dx by the transposed algorithm (below)
    {"type": "flatten"},
    {"type": "dense", "units": 5, "activation": "softmax"},
]


def trained_params(recycle: bool, steps: int = 4) -> dict[str, np.ndarray]:
    """The parameters after ``steps`` SGD steps of a small CNN, with the layers' recycling on or off."""
    model = Model([create("layer", t["type"], **{k: v for k, v in t.items() if k != "type"}) for t in LAYERS])
    model.build((14, 14, 3), np.random.default_rng(0))
    model.layers[4].plan.input_gradient = "transposed"
    for layer in model.layers:
        assert getattr(layer, "recycle_outputs", recycle) is True  # the model sets it
        layer.recycle_outputs = recycle
    cost, optimizer = create("cost", "cross_entropy"), create("optimizer", "sgd", learning_rate=0.1, momentum=0.9)
    rng = np.random.default_rng(1)
    for step in range(steps):
        x = rng.random((10 - step, 14, 14, 3), dtype=np.float32)  # the batch shrinks: views of the buffers
        model.loss_and_gradients(x, rng.integers(0, 5, 10 - step), cost)
        optimizer.step(model.params(), model.grads())
        model.predict(x[:3])  # evaluation between steps uses fresh arrays
    return {name: value.copy() for name, value in model.params().items()}


def test_recycled_outputs_train_exactly_as_fresh_ones():
    recycled, fresh = trained_params(True), trained_params(False)
    assert recycled.keys() == fresh.keys()
    for name in fresh:
        assert np.array_equal(recycled[name], fresh[name]), name


@pytest.mark.parametrize("layer_type, params", [("conv2d", {"filters": 4, "kernel_size": 3}),
                                                ("conv2d", {"filters": 4, "kernel_size": 3, "padding": "same"}),
                                                ("pool2d", {"pool_size": 2}),
                                                ("pool2d", {"pool_size": 2, "padding": "same"})])
def test_training_outputs_are_reused_only_when_recycling(layer_type, params):
    layer = create("layer", layer_type, **params)
    assert isinstance(layer, RecyclingLayer) and layer.recycle_outputs is False
    layer.build((7, 7, 2), np.random.default_rng(0))
    x = np.random.default_rng(1).random((3, 7, 7, 2), dtype=np.float32)

    def step():
        y = layer.forward(x, True)
        return y, layer.backward(np.ones_like(y))

    first, second = step(), step()
    assert not any(np.shares_memory(a, b) for a, b in zip(first, second))  # fresh arrays by default
    layer.recycle_outputs = True
    first, second = step(), step()
    assert all(np.shares_memory(a, b) for a, b in zip(first, second))  # the same buffers, step after step
    evaluated = layer.forward(x, False)
    assert np.array_equal(first[0], evaluated) and not np.shares_memory(evaluated, first[0])  # a new array
    assert not any(np.shares_memory(a, b) for a, b in zip(first, step()))  # evaluation let the buffers go
