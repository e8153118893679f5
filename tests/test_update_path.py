"""The one update path (``run.apply_update``): every strategy's layer state follows one rule.

When the trainer applies an update, each share computed on a replica adds its change of layer state,
``state + weight * (after - before)``; a share computed on ``run.model`` itself has changed it already.
A layer that counts the training batches it sees in its state then counts every batch exactly once,
whichever strategy computed it: ``serial``, ``sync`` (shares weighted ``n_k / n``), ``async`` and
``ray_async`` (gradients of stale parameters, applied as they arrive). Before this rule was shared,
``ray_async`` overwrote the state with the arriving worker's copy and lost the batches applied in between.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import numpyml_core as nm
from numpyml_core.plugin_api import Update

from blobs import EXPERIMENT, SOURCE
from conftest import require_real_data, site_for_workers, write_dist

COUNTER = SOURCE + '''

class Counter:
    """Identity that counts, in its layer state, the training batches (or shares) it sees."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def build(self, input_shape, rng):
        self.state = {"batches": np.zeros(1, np.float32)}
        return tuple(input_shape)

    def forward(self, x, training):
        if training:
            self.state["batches"] += 1
        return x

    def backward(self, dy):
        return dy


@hookimpl
def numpyml_register_components(register):
    register("dataset", "fakeplug_blobs", Blobs)
    register("layer", "fakeplug_counter", Counter)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The blobs dataset and the counting layer as an installed distribution, visible to worker processes
    (spawned by ``sync``/``async``, or started by Ray)."""
    root = write_dist(tmp_path_factory.mktemp("site"), "fakeplug-counter", "0.0.1", {"counter": "fakeplug_counter"},
                      {"fakeplug_counter": COUNTER})
    with site_for_workers(root):
        yield root
    sys.modules.pop("fakeplug_counter", None)


def counted(tmp_path, strategy: str) -> tuple[float, int]:
    """(batches the counting layer's state holds, steps) after one epoch of blobs with ``strategy``."""
    text = EXPERIMENT.replace("epochs = 3", "epochs = 1").replace(
        '[[model.layers]]\ntype = "flatten"', '[[model.layers]]\ntype = "fakeplug_counter"\n[[model.layers]]\ntype = "flatten"')
    path = tmp_path / "counter.toml"
    path.write_text(f"{text}\n[training.strategy]\n{strategy}\n")
    result = nm.run(path, output=tmp_path / "run", progress=False)
    return float(result.run.model.state()["0.batches"][0]), result.summary["steps"]


LOCAL = ['type = "serial"', 'type = "sync"\nworkers = 3', 'type = "sync"\nworkers = 2\nlocal_share = false',
         'type = "async"\nworkers = 2\nlocal_share = false', 'type = "async"\nworkers = 3']
RAY = ['type = "ray_sync"\nworkers = 2', 'type = "ray_async"\nworkers = 2']


@pytest.mark.parametrize("strategy", LOCAL + [pytest.param(s, marks=pytest.mark.ray) for s in RAY],
                         ids=lambda s: s.replace("\n", " ").replace('"', ""))
def test_every_strategy_counts_every_batch_once_in_the_layer_state(site, tmp_path, strategy):
    if "ray" in strategy and importlib.util.find_spec("ray") is None:  # not imported here: the strategy
        require_real_data("Ray is not installed: pip install 'numpyml[ray]'")  # sets Ray's variables first
    batches, steps = counted(tmp_path, strategy)
    assert steps == 63
    assert batches == pytest.approx(steps, abs=1e-4)


class FakeRun:
    """What ``Run.apply_update`` touches: a model with one parameter and one state array, an optimizer."""

    class _Optimizer:
        learning_rate = 0.5

        def step(self, params, grads):
            self.rate = self.learning_rate
            for name, value in params.items():
                value -= self.learning_rate * grads[name]

    class _Model:
        def __init__(self):
            self._params = {"0.w": np.ones(2, np.float32)}
            self._state = {"1.mean": np.full(2, 10.0, np.float32)}

        def params(self):
            return self._params

        def state(self):
            return self._state

    def __init__(self):
        self.model, self.optimizer, self.seen = self._Model(), self._Optimizer(), []
        outer = self

        class Hooks:
            @staticmethod
            def numpyml_before_update(run, params, grads):
                outer.seen.append({k: v.copy() for k, v in grads.items()})

        self.hooks = Hooks()


def test_apply_update_merges_state_then_calls_the_hook_and_steps_with_the_compensated_rate():
    from numpyml_parallel.staleness import StalenessCompensation
    from numpyml_core.trainer import Run  # the method under test, applied to a stand-in run

    run = FakeRun()
    before = {"1.mean": np.array([1.0, 2.0], np.float32)}
    shares = [(before, {"1.mean": np.array([3.0, 2.0], np.float32)}, 0.25),
              (before, {"1.mean": np.array([1.0, 6.0], np.float32)}, 0.75)]
    update = Update({"0.w": np.array([2.0, 4.0], np.float32)}, tau=2, state=shares)
    Run.apply_update(run, update, StalenessCompensation("divide"))
    np.testing.assert_allclose(run.model.state()["1.mean"], [10.0 + 0.25 * 2, 10.0 + 0.75 * 4])
    np.testing.assert_allclose(run.seen[0]["0.w"], [2.0, 4.0])
    assert run.optimizer.rate == 0.25 and run.optimizer.learning_rate == 0.5  # divided by tau for this step only
    np.testing.assert_allclose(run.model.params()["0.w"], [1.0 - 0.25 * 2, 1.0 - 0.25 * 4])
