"""numpyml_kit.testing, the plugin author's kit: its checks pass on every built-in component
(dogfooding) and catch the mistakes they promise to catch."""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import pytest

from numpyml_core import create, get_plugin_manager
from numpyml_kit import testing
from numpyml_core.errors import ConfigError
from numpyml_kit.testing import ContractError


class Scale:
    """A correct layer with parameters: y = x * gamma (per feature)."""

    def __init__(self) -> None:
        self.params: dict = {}
        self.grads: dict = {}

    def build(self, input_shape, rng):
        self.params = {"gamma": rng.uniform(0.5, 1.5, size=input_shape[-1]).astype(np.float32)}
        self.grads = {"gamma": np.zeros_like(self.params["gamma"])}
        return tuple(input_shape)

    def forward(self, x, training):
        self._x = x
        return x * self.params["gamma"].astype(x.dtype, copy=False)

    def backward(self, dy):
        self.grads["gamma"][...] = np.sum(dy * self._x, axis=tuple(range(dy.ndim - 1)))
        return dy * self.params["gamma"].astype(dy.dtype, copy=False)


def broken(**overrides):
    """A subclass of Scale with one method replaced."""
    return type("Broken", (Scale,), overrides)


# -- dogfooding: every built-in component passes its contract check -------------------------------
def builtin_components():
    manager = testing._kit_manager()
    return [
        (c.kind, c.name) for c in manager.registry.all()
        if c.distribution == "numpyml" and c.name != testing.TINY_DATASET
        # multi-process strategies start workers (ray: ~30 s); their own suites train with them
        and (c.kind != "strategy" or c.name == "serial")
    ]


#: built-in components that need an optional extra -> the module it installs
OPTIONAL_EXTRAS = {("callback", "mlflow"): "mlflow", ("callback", "tensorboard"): "tensorboardX"}


@pytest.mark.parametrize("kind,name", builtin_components())
def test_every_builtin_component_passes_or_is_honestly_skipped(kind, name):
    import importlib.util

    component = get_plugin_manager().registry.get(kind, name)
    result = testing.check_component(kind, name, component.factory)
    assert result.status in ("pass", "skip"), result.detail
    if result.status == "skip":  # only for honest reasons
        assert result.detail.startswith(("needs parameters", "data not available", "cannot build with probe",
                                         testing.MISSING_EXTRA)), result.detail
    if result.detail.startswith(testing.MISSING_EXTRA):  # and then only when the extra really is missing
        module = OPTIONAL_EXTRAS[(kind, name)]
        assert importlib.util.find_spec(module) is None, result.detail
        assert "pip install 'numpyml[" in result.detail


# -- layers ------------------------------------------------------------------------------------
def test_check_layer_passes_a_correct_layer_and_reports():
    result = testing.check_layer(Scale, input_shape=(3, 2))
    assert result == {"input_shape": (3, 2), "output_shape": (3, 2), "parameters": 2,
                      "stochastic_in_training": False, "gradient_mode": "training"}


def test_check_layer_probes_an_input_shape():
    assert testing.check_layer(functools.partial(create, "layer", "conv2d", filters=2))["input_shape"] == (5, 5, 2)
    assert testing.check_layer(functools.partial(create, "layer", "dropout", rate=0.5))["gradient_mode"] == "evaluation"


def wrong_dx(self, dy):
    return 1.01 * Scale.backward(self, dy)


def wrong_param_grad(self, dy):
    dx = Scale.backward(self, dy)
    self.grads["gamma"] *= 2
    return dx


def rebinds(self, dy):
    dx = Scale.backward(self, dy)
    self.params["gamma"] = self.params["gamma"].copy()
    return dx


@pytest.mark.parametrize("overrides,message", [
    ({"backward": wrong_dx}, "dx .gradient with respect to the input.: the analytic gradient differs"),
    ({"backward": wrong_param_grad}, r"grads\['gamma'\]: the analytic gradient differs"),
    ({"backward": rebinds}, "rebound after build"),
    ({"forward": lambda self, x, t: Scale.forward(self, x.astype(np.float64), t)}, "float32 input into float64"),
    ({"forward": lambda self, x, t: Scale.forward(self, x, t)[:, :1]}, "returned shape"),
    ({"build": lambda self, s, rng: (Scale.build(self, s, np.random.default_rng()), tuple(s))[1]}, "same seed"),
    ({"forward": lambda self, x, t: Scale.forward(self, x - x.mean(axis=0), t)}, "depends on the rest of the batch"),
    ({"build": lambda self, s, rng: [*s]  if False else "shape"}, "must return the per-sample output shape"),
])
def test_check_layer_catches(overrides, message):
    with pytest.raises(ContractError, match=message):
        testing.check_layer(broken(**overrides), input_shape=(4,))


class RecyclingScale(Scale):
    """Scale that returns its own output buffer from training forward when ``recycle_outputs`` is set."""

    recycle_outputs = False

    def _buffer(self, x, training):
        if not (training and self.recycle_outputs):
            return np.empty_like(x)
        if getattr(self, "_out", None) is None or self._out.shape != x.shape:
            self._out = np.empty_like(x)
        return self._out

    def forward(self, x, training):
        self._x = x
        return np.multiply(x, self.params["gamma"], out=self._buffer(x, training))


def stale(self, x, training):  # recycling bug: the second training call returns the first call's values
    if training and self.recycle_outputs and getattr(self, "_out", None) is not None:
        self._x = x
        return self._out
    return RecyclingScale.forward(self, x, training)


@pytest.mark.parametrize("overrides,message", [
    ({}, None),
    ({"_buffer": lambda self, x, training: RecyclingScale._buffer(self, x, True)}, "evaluation outputs must be new"),
    ({"forward": stale}, "training step 2 gives other outputs"),
])
def test_check_layer_checks_recycled_outputs(overrides, message):
    layer = type("Recycling", (RecyclingScale,), overrides)
    if message is None:
        assert testing.check_layer(layer, input_shape=(4,))["output_shape"] == (4,)
    else:
        with pytest.raises(ContractError, match=message):
            testing.check_layer(layer, input_shape=(4,))


def test_gradient_check_needs_float64_computation():
    leaky = broken(forward=lambda self, x, t: Scale.forward(self, x.astype(np.float32), t))
    with pytest.raises(ContractError, match="float64 input into float32"):
        testing.check_layer_gradients(leaky(), (3,))


def test_layer_that_fits_no_probe_shape_needs_parameters():
    picky = broken(build=lambda self, s, rng: (_ for _ in ()).throw(ValueError("needs 7 features")))
    with pytest.raises(testing.NeedsParameters, match="needs 7 features"):
        testing.check_layer(picky)


# -- costs, optimizers, initializers ------------------------------------------------------------
def test_check_cost_on_builtins_and_a_wrong_gradient():
    assert testing.check_cost(functools.partial(create, "cost", "cross_entropy"))["fused"] == "softmax"
    assert testing.check_cost(functools.partial(create, "cost", "quadratic"))["fused"] is None
    quadratic = type(create("cost", "quadratic"))

    class Wrong(quadratic):
        def gradient(self, outputs, targets):
            return 2 * super().gradient(outputs, targets)

    with pytest.raises(ContractError, match="gradient"):
        testing.check_cost(Wrong)


def test_check_optimizer_catches_missing_state_and_rebinding():
    sgd = type(create("optimizer", "sgd"))
    testing.check_optimizer(functools.partial(sgd, learning_rate=0.1, momentum=0.9))

    class Forgetful(sgd):
        def state_dict(self):
            return {}

    with pytest.raises(ContractError, match="does not continue exactly"):
        testing.check_optimizer(functools.partial(Forgetful, learning_rate=0.1, momentum=0.9))

    class Rebinding:
        learning_rate = 0.1

        def step(self, params, grads):
            for key in params:
                params[key] = params[key] - self.learning_rate * grads[key]

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    with pytest.raises(ContractError, match="in place"):
        testing.check_optimizer(Rebinding)


def test_check_initializer_catches_unseeded_randomness():
    testing.check_initializer(functools.partial(create, "initializer", "he"))
    with pytest.raises(ContractError, match="same seed"):
        testing.check_initializer(lambda: lambda shape, rng, dtype: np.random.random(shape).astype(dtype))


# -- datasets, transforms, schedules, callbacks, strategies ----------------------------------------
def test_check_dataset_on_the_kit_dataset_and_bad_labels():
    assert testing.check_dataset(testing.TinyBlobs)["splits"] == {"train": 256, "test": 64}

    class FloatLabels(testing.TinyBlobs):
        def load(self, data_dir):
            splits = super().load(data_dir)
            splits["train"].y = splits["train"].y.astype(np.float32)
            return splits

    with pytest.raises(ContractError, match="int64 labels"):
        testing.check_dataset(FloatLabels)


def test_check_transform_and_schedule():
    testing.check_transform(lambda: lambda x, rng: x + rng.standard_normal(x.shape, dtype=np.float32))
    with pytest.raises(ContractError, match="float32"):
        testing.check_transform(lambda: lambda x, rng: x.astype(np.float64))
    testing.check_schedule(lambda: lambda step, epoch, base: base * 0.9 ** epoch)
    with pytest.raises(ContractError, match="finite non-negative"):
        testing.check_schedule(lambda: lambda step, epoch, base: -1.0)


def test_check_callback_validates_hook_names_and_arguments():
    from numpyml_core import hookimpl

    class Typo:
        @hookimpl
        def numpyml_on_epoch_end(self, run, epok):
            pass

    with pytest.raises(ContractError, match="does not match its specification"):
        testing.check_callback(Typo, run=False)

    class Nothing:
        pass

    with pytest.raises(ContractError, match="at least one @hookimpl"):
        testing.check_callback(Nothing, run=False)


def test_check_strategy_trains_with_the_builtin_serial():
    serial = get_plugin_manager().registry.get("strategy", "serial").factory
    assert testing.check_strategy(serial)["summary"]["epochs"] == 3


# -- probe parameters ------------------------------------------------------------------------------
def test_probe_params_guesses_small_values_or_says_what_it_needs():
    def factory(units: int, rate: float, mode: Literal["a", "b"], flag: bool, keep: int = 9):
        pass

    assert testing.probe_params(factory) == {"units": 3, "rate": 0.1, "mode": "a", "flag": False}

    def needs_text(path: str):
        pass

    with pytest.raises(testing.NeedsParameters, match="path"):
        testing.probe_params(needs_text)
    needs_text.example_params = {"path": "x"}
    assert testing.probe_params(needs_text) == {"path": "x"}

    def dataset(download: bool = True):
        pass

    assert testing.probe_params(dataset, "dataset") == {"download": False}


# -- the tiny experiment and the pytest fixtures -------------------------------------------------------
def test_tiny_experiment_with_a_registered_name():
    summary, run = testing.run_tiny_experiment("activation", "relu", epochs=3)
    assert summary["epochs"] == 3 and summary["test_accuracy"] > 0.6  # 4 classes: chance is 0.25
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]


def test_tiny_experiment_with_an_uninstalled_factory(numpyml_tiny_experiment, tmp_path):
    summary, run = numpyml_tiny_experiment("layer", Scale)
    assert run.output_dir.parent == tmp_path
    assert [type(layer).__name__ for layer in run.model.layers][:2] == ["Scale", "Flatten"]
    dense_only = numpyml_tiny_experiment("layer", functools.partial(create, "layer", "dense", units=5))[1]
    assert type(dense_only.model.layers[0]).__name__ == "Flatten"  # dense needs flat input: second place


def test_tiny_experiment_restores_the_process_manager():
    before = get_plugin_manager()
    testing.run_tiny_experiment("optimizer", "sgd", epochs=1)
    assert get_plugin_manager() is before


def test_tiny_experiment_says_when_a_component_fits_nowhere():
    with pytest.raises(ConfigError, match="does not fit a tiny network"):
        testing.run_tiny_experiment("layer", "reshape", {"target_shape": [7, 7]}, epochs=1)


def test_fixtures(numpyml_rng, numpyml_manager):
    assert numpyml_rng.integers(0, 1000) == np.random.default_rng(0).integers(0, 1000)
    assert get_plugin_manager() is numpyml_manager
    assert numpyml_manager.registry.get("layer", "dense").distribution == "numpyml"


def test_kit_is_registered_as_a_pytest_plugin(pytestconfig):
    assert pytestconfig.pluginmanager.get_plugin("numpyml") is testing


# -- numpyml_plugin / plugin_components: "my plugin loads and registers these components" -------------------
FAKE_PLUGIN = """
from numpyml_core import hookimpl

class Halve:
    def __init__(self, learning_rate: float = 0.1):
        self.learning_rate = learning_rate

@hookimpl
def numpyml_register_components(register):
    register("optimizer", "fakeplug_halve", Halve)
    register("optimizer", "fakeplug_lazy", "fakeplug_kit:Halve")
"""


def test_plugin_components_of_an_installed_distribution_and_of_its_module(make_dist, numpyml_plugin):
    make_dist("fake-kit-dist", "1.2", {"kitplug": "fakeplug_kit"}, {"fakeplug_kit": FAKE_PLUGIN})
    import fakeplug_kit

    for plugin in ("fake-kit-dist", fakeplug_kit):  # installed: by name, or its module (loaded once, not twice)
        components = numpyml_plugin(plugin)
        assert {key: c.factory for key, c in components.items()} == {
            ("optimizer", "fakeplug_halve"): fakeplug_kit.Halve, ("optimizer", "fakeplug_lazy"): fakeplug_kit.Halve}
        assert {(c.plugin, c.distribution, c.version) for c in components.values()} == {("kitplug", "fake-kit-dist",
                                                                                          "1.2")}


def test_plugin_components_of_a_module_that_is_not_installed():
    import types

    module = types.ModuleType("fakeplug_loose")
    exec(FAKE_PLUGIN.replace('"fakeplug_kit:Halve"', '"numpyml_optimizers.sgd:SGD"'), module.__dict__)
    components = testing.plugin_components(module)
    assert components[("optimizer", "fakeplug_halve")].distribution == "not installed"
    assert components[("optimizer", "fakeplug_lazy")].factory.__name__ == "SGD"


def test_plugin_components_fails_on_a_name_clash_a_bad_lazy_reference_or_a_missing_distribution(make_dist):
    clash = FAKE_PLUGIN.replace('"fakeplug_halve"', '"sgd"').replace("fakeplug_kit:", "fakeplug_clash:")
    make_dist("fake-clash", "0.1", {"clash": "fakeplug_clash"}, {"fakeplug_clash": clash})
    with pytest.raises(ContractError, match=r"plugin 'clash' \(fake-clash\) failed to load: optimizer 'sgd' is "
                                            r"registered twice.*Rename the optimizer"):
        testing.plugin_components("fake-clash")
    make_dist("fake-badref", "0.1", {"badref": "fakeplug_badref"},
              {"fakeplug_badref": FAKE_PLUGIN.replace('"fakeplug_kit:Halve"', '"fakeplug_badref:Nope"')})
    with pytest.raises(ContractError, match=r"fakeplug_lazy' of plugin 'badref'.*cannot load 'fakeplug_badref:Nope'"):
        testing.plugin_components("fake-badref")
    with pytest.raises(testing.NotInstalled, match="fake-absent is not installed in this Python environment"):
        testing.plugin_components("fake-absent")


def test_numpyml_plugin_skips_when_the_distribution_is_not_installed(numpyml_plugin):
    with pytest.raises(pytest.skip.Exception, match="fake-absent-dist is not installed in this Python environment"):
        numpyml_plugin("fake-absent-dist")
