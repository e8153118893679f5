"""End to end on real CIFAR-10 (NUMPYML_DATA_DIR): a small CNN trained on a 5,000-image subset with
the CIFAR recipe's components (normalization, random crop, flip, one-cycle, label smoothing,
Nesterov, weight decay) must score well above chance (10 %) on the test images, in well under 90 s."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import require_real_data
from numpyml_core.config import parse_experiment
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import prepare, train

pytestmark = pytest.mark.realdata

SUBSET = 5000


@pytest.fixture
def cifar10_dir() -> Path:
    value = os.environ.get("NUMPYML_DATA_DIR")
    if not value or not (Path(value) / "cifar10" / "cifar-10-batches-py" / "data_batch_1").is_file():
        require_real_data("real CIFAR-10 not found: set NUMPYML_DATA_DIR to a folder holding "
                          "cifar10/cifar-10-batches-py/ (see README)")
    return Path(value)


def conv(filters: int) -> list[dict]:
    return [
        {"type": "conv2d", "filters": filters, "kernel_size": 3, "padding": "same", "bias": "none",
         "weight_initializer": "he"},
        {"type": "batch_norm"},
        {"type": "relu"},
        {"type": "pool2d", "pool_size": 2},
    ]


EXPERIMENT = {
    "name": "cifar10-ci",
    "seed": 7,
    "dataset": {"type": "cifar10", "download": False},
    "model": {"layers": [*conv(24), *conv(48), *conv(96), {"type": "global_avg_pool"},
                         {"type": "dense", "units": 10, "activation": "softmax"}]},
    "cost": {"type": "cross_entropy", "label_smoothing": 0.1},
    "optimizer": {"type": "sgd", "learning_rate": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    "training": {
        "epochs": 4, "batch_size": 64, "eval_batch_size": 500, "eval_splits": ["test"],
        "schedule": {"type": "one_cycle", "peak_fraction": 0.25, "anneal": "linear"},
        "transforms": [{"type": "random_crop", "padding": 4}, {"type": "horizontal_flip"}],
    },
}


def test_small_cnn_learns_real_cifar10(cifar10_dir):
    manager = get_plugin_manager()
    spec = parse_experiment(EXPERIMENT, "<cifar10 ci>", manager.registry)
    run = prepare(spec, manager, data_dir=str(cifar10_dir))
    assert len(run.splits["train"]) == 50000
    run.splits["train"] = run.splits["train"].subset(0, SUBSET)  # keeps the normalization
    started = time.perf_counter()
    summary = train(run)
    seconds = time.perf_counter() - started
    accuracy = summary["test_accuracy"]
    print(f"\nCIFAR-10 subset of {SUBSET}: test accuracy {accuracy:.3f} in {seconds:.1f} s")
    assert accuracy > 0.35, summary  # chance is 0.10
    assert summary["train_loss"] < 2.0
