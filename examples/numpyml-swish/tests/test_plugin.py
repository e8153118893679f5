"""numpyml-swish loads and registers its components as numpyml loads plugins (the kit's numpyml_plugin fixture)."""

import numpyml_swish
from numpyml_swish import LearnedSwish, Spirals, StopAtTarget, Swish

EXPECTED = {
    ("activation", "swish"): Swish,
    ("layer", "swish"): Swish,
    ("layer", "learned_swish"): LearnedSwish,
    ("dataset", "spirals"): Spirals,
    ("callback", "stop_at_target"): StopAtTarget,
}


def test_the_register_hook_registers_every_component(numpyml_plugin):
    # this module, loaded after every installed plugin: a name another plugin already has fails here
    components = numpyml_plugin(numpyml_swish)
    assert {key: component.factory for key, component in components.items()} == EXPECTED


def test_the_installed_distribution_is_found_through_its_entry_point(numpyml_plugin):
    components = numpyml_plugin("numpyml-swish")  # skipped until it is installed (README.md, Install)
    assert {key: component.factory for key, component in components.items()} == EXPECTED
    assert {(c.plugin, c.distribution) for c in components.values()} == {("swish", "numpyml-swish")}
