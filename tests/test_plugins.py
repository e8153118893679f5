"""Plugin discovery from installed distributions: provenance, failures, duplicates, disabling."""

from __future__ import annotations

import pytest

from numpyml_core import PluginError, PluginManager
from numpyml_core.errors import ConfigError

GOOD = """
from numpyml_core import hookimpl

class Swish:
    '''x * sigmoid(beta x).'''
    def __init__(self, beta: float = 1.0):
        self.beta = beta

@hookimpl
def numpyml_register_components(register):
    register("activation", "fake_swish", Swish)
"""


def loaded(**kwargs) -> PluginManager:
    manager = PluginManager(**kwargs)
    manager.load_entry_points()
    return manager


def test_builtins_register_with_provenance():
    manager = loaded()
    dense = manager.registry.get("layer", "dense")
    assert dense.distribution == "numpyml"
    assert dense.plugin == "layers"
    assert dense.version == "0.1.0"
    for kind, name in [("strategy", "serial"), ("callback", "progress"), ("callback", "metrics_csv"),
                       ("dataset", "mnist"), ("cost", "cross_entropy"), ("optimizer", "sgd")]:
        assert manager.registry.get(kind, name).distribution == "numpyml"
    assert manager.failed == []


def test_third_party_plugin_is_found_with_its_distribution(make_dist):
    make_dist("fake-swish", "0.3.1", {"swish": "fakeplug_swish"}, {"fakeplug_swish": GOOD})
    manager = loaded()
    component = manager.registry.get("activation", "fake_swish")
    assert (component.plugin, component.distribution, component.version) == ("swish", "fake-swish", "0.3.1")
    assert manager.create("activation", "fake_swish", beta=2).beta == 2.0


def test_broken_import_is_recorded_and_others_work(make_dist, capsys):
    make_dist("fake-broken", "1.0", {"broken": "fakeplug_broken"}, {"fakeplug_broken": "raise RuntimeError('boom')"})
    manager = loaded()
    assert [(f.plugin, f.distribution) for f in manager.failed] == [("broken", "fake-broken")]
    assert "RuntimeError: boom" in manager.failed[0].error
    assert "fake-broken" in capsys.readouterr().err
    assert manager.registry.get("layer", "dense")  # the rest still works


def test_register_hook_that_raises_is_rolled_back(make_dist):
    source = GOOD.replace('register("activation", "fake_swish", Swish)',
                          'register("activation", "fake_swish", Swish)\n    raise ValueError("half way")')
    make_dist("fake-half", "1.0", {"half": "fakeplug_half"}, {"fakeplug_half": source})
    manager = loaded()
    assert "half way" in manager.failed[0].error
    assert ("activation", "fake_swish") not in manager.registry.components


def test_duplicate_name_names_both_distributions(make_dist):
    source = GOOD.replace('"activation", "fake_swish"', '"layer", "dense"')
    make_dist("fake-dup", "2.0", {"dup": "fakeplug_dup"}, {"fakeplug_dup": source})
    manager = loaded()
    (failure,) = manager.failed
    assert "fake-dup" in failure.error and "numpyml" in failure.error
    assert manager.registry.get("layer", "dense").distribution == "numpyml"


def test_strict_mode_makes_failures_fatal(make_dist, monkeypatch):
    make_dist("fake-broken", "1.0", {"broken": "fakeplug_broken"}, {"fakeplug_broken": "import nonexistent_mod"})
    monkeypatch.setenv("NUMPYML_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fake-broken"):
        loaded()


def test_factory_without_signature_is_rejected(make_dist):
    source = GOOD.replace('register("activation", "fake_swish", Swish)', "register('layer', 'fake_builtin', dict)")
    make_dist("fake-nosig", "1.0", {"nosig": "fakeplug_nosig"}, {"fakeplug_nosig": source})
    manager = loaded()
    (failure,) = manager.failed
    assert failure.distribution == "fake-nosig" and "no usable signature" in failure.error


def test_disable_by_entry_point_name(monkeypatch):
    monkeypatch.setenv("NUMPYML_DISABLE_PLUGINS", "datasets, costs")
    manager = loaded()
    assert manager.registry.names("dataset") == []
    assert manager.registry.names("cost") == []
    assert manager.registry.names("layer")
    manager = PluginManager(disable=["layers"])
    monkeypatch.delenv("NUMPYML_DISABLE_PLUGINS")
    manager = loaded(disable=["layers"])
    assert manager.registry.names("layer") == []


def test_unknown_component_suggests_a_name():
    manager = loaded()
    with pytest.raises(ConfigError, match="did you mean 'dense'"):
        manager.create("layer", "dens", units=3)
    with pytest.raises(ConfigError, match="unknown parameter 'unit'.*did you mean 'units'"):
        manager.create("layer", "dense", unit=3)
    with pytest.raises(ConfigError, match="parameter 'units': expected an integer"):
        manager.create("layer", "dense", units="ten")
