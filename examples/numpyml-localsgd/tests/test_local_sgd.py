"""numpyml-localsgd's own tests, with numpyml's plugin test kit (numpyml_kit.testing)."""

import functools

import pytest

from numpyml_kit.testing import check_strategy, run_tiny_experiment

from numpyml_localsgd import LocalSGD


@pytest.mark.parametrize("workers,local_steps", [(1, 1), (3, 2), (4, 5)])
def test_the_strategy_contract(workers, local_steps):
    check_strategy(functools.partial(LocalSGD, workers=workers, local_steps=local_steps))


def test_it_learns_the_tiny_blobs():
    summary, run = run_tiny_experiment("strategy", LocalSGD, {"workers": 2, "local_steps": 3}, epochs=3)
    assert summary["test_accuracy"] > 0.9
    assert run.strategy.replicas == []  # teardown released the replicas


@pytest.mark.parametrize("params", [{"workers": 0}, {"local_steps": 0}, {"workers": 1.5}])
def test_bad_settings_are_refused(params):
    with pytest.raises(ValueError):
        LocalSGD(**params)
