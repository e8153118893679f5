"""numpyml-swish registers its component like any numpyml plugin."""

from importlib import metadata

import pytest

from numpyml_core import PluginManager

import numpyml_swish


def test_register_hook_registers_the_activation():
    manager = PluginManager()
    manager.load_plugin(numpyml_swish, "swish", "numpyml-swish", numpyml_swish.__version__)
    assert manager.failed == []
    assert manager.registry.get("activation", "swish").factory is numpyml_swish.Swish


def test_installed_distribution_is_found_through_its_entry_point():
    try:
        metadata.distribution("numpyml-swish")
    except metadata.PackageNotFoundError:
        pytest.skip("numpyml-swish is not installed; run 'pip install -e .' to test its entry point")
    manager = PluginManager()
    manager.load_entry_points()
    component = manager.registry.get("activation", "swish")
    assert (component.plugin, component.distribution) == ("swish", "numpyml-swish")
