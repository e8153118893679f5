"""A small CNN learns real MNIST through the real trainer (conv2d, batch_norm, pool2d, dropout).

Trains on a 10,000-image slice of the training set for 3 epochs (about 10 s on 2 cores) and checks
the first 2,000 test images: measured 97.2 %. The same run with both convolutions frozen at their
random initialization (what a convolution with a broken gradient amounts to) reaches 93 %, and a
broken forward pass less, so 96 % is out of its reach. Without the data it skips; CI sets
NUMPYML_REQUIRE_REAL_DATA=1, which turns the skip into a failure.
"""

from __future__ import annotations

import numpy as np
import pytest

from numpyml_core.config import parse_experiment
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import prepare, train

pytestmark = pytest.mark.realdata

SMALL_CNN = {
    "name": "ci-small-cnn", "seed": 1,
    "dataset": {"type": "mnist", "download": False},
    "model": {"layers": [
        {"type": "conv2d", "filters": 16, "kernel_size": 5, "weight_initializer": "he"},
        {"type": "batch_norm"},
        {"type": "relu"},
        {"type": "pool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 32, "kernel_size": 5, "activation": "relu", "weight_initializer": "he"},
        {"type": "pool2d", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dropout", "rate": 0.25},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ]},
    "cost": {"type": "cross_entropy"},
    "optimizer": {"type": "sgd", "learning_rate": 0.02, "momentum": 0.9},
    "training": {"epochs": 3, "batch_size": 32, "eval_splits": ["test"]},
}


def test_small_cnn_learns_mnist(mnist_dir):
    manager = get_plugin_manager()
    spec = parse_experiment(SMALL_CNN, "tests/test_cnn_realdata.py", manager.registry)
    run = prepare(spec, manager, data_dir=str(mnist_dir))
    run.splits["train"] = run.splits["train"].subset(0, 10000)
    run.splits["test"] = run.splits["test"].subset(0, 2000)
    summary = train(run)
    assert summary["test_accuracy"] >= 0.96, summary
    assert summary["train_loss"] < 0.2, summary
    bn = run.model.layers[1]
    assert np.all(bn.state["moving_variance"] != 1.0)  # the running statistics were trained
