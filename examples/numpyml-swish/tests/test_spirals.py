"""The spirals dataset, checked with numpyml's test kit."""

import numpy as np

from numpyml_kit import testing

from numpyml_swish import Spirals


def test_dataset_contract():
    result = testing.check_dataset(Spirals)
    assert result["splits"] == {"train": 1500, "test": 375}


def test_same_seed_same_data_and_classes_balanced():
    a, b = Spirals().load(None)["train"], Spirals().load(None)["train"]
    np.testing.assert_array_equal(a.x, b.x)
    counts = np.bincount(a.y, minlength=3)
    assert counts.min() > 400


def test_a_network_learns_it(numpyml_tiny_experiment):
    summary, run = numpyml_tiny_experiment("dataset", Spirals, epochs=4, learning_rate=0.3)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
