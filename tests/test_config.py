"""Experiment validation: every mistake names the file and the key, and says what was expected."""

from __future__ import annotations

import tomllib

import pytest

from numpyml_core import Experiment, PluginManager
from numpyml_core.config import dumps_toml, parse_experiment
from numpyml_core.errors import ConfigError
from numpyml_core.trainer import validate_experiment

VALID = """
name = "t"
seed = 3
[dataset]
type = "mnist"
validation = 100
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "dense"
units = 16
activation = "relu"
[[model.layers]]
type = "dense"
units = 10
activation = "softmax"
[cost]
type = "cross_entropy"
[optimizer]
type = "sgd"
learning_rate = 0.1
[training]
epochs = 2
batch_size = 8
"""


@pytest.fixture(scope="module")
def manager():
    m = PluginManager()
    m.load_entry_points()
    return m


def parse(text: str, manager):
    return parse_experiment(tomllib.loads(text), "exp.toml", manager.registry)


def test_valid_file_resolves_defaults(manager):
    spec = parse(VALID, manager)
    assert spec.name == "t" and spec.seed == 3 and spec.validation == 100
    assert spec.layers[1].params["units"] == 16
    assert spec.layers[1].params["use_bias"] is True  # default filled in
    assert spec.optimizer.params["learning_rate"] == 0.1
    assert spec.strategy.type == "serial"
    model = validate_experiment(spec, manager)
    assert model.output_shape == (10,)


@pytest.mark.parametrize("change, message", [
    (('units = 16', 'unit = 16'), r"exp.toml: \[\[model.layers\]\] #2: unknown parameter 'unit' \(did you mean 'units'\?\)"),
    (('units = 16', 'units = "16"'), r"#2: parameter 'units': expected an integer, got '16'"),
    (('type = "dense"\nunits = 16', 'type = "dens"\nunits = 16'), r"#2: unknown layer 'dens' \(did you mean 'dense'\?\)"),
    (('type = "sgd"', 'type = "sgdd"'), r"\[optimizer\]: unknown optimizer 'sgdd' \(did you mean 'sgd'\?\)"),
    (('epochs = 2', 'epocs = 2'), r"\[training\]: unknown key 'epocs' \(did you mean 'epochs'\?\)"),
    (('batch_size = 8', 'batch_size = 0'), r"\[training\]: 'batch_size' must be at least 1"),
    (('validation = 100', 'validation = -1'), r"\[dataset\]: 'validation' must be a non-negative integer"),
    (('seed = 3', 'seed = "x"'), r"'seed' must be a non-negative integer"),
    (('name = "t"', 'nme = "t"'), r"unknown top-level key 'nme' \(did you mean 'name'\?\)"),
    (('[cost]\ntype = "cross_entropy"', ''), r"missing section \[cost\]"),
    (('learning_rate = 0.1', 'learning_rate = -0.1'), r"\[optimizer\].*learning_rate"),
])
def test_mistakes_are_explained(manager, change, message):
    old, new = change
    assert old in VALID
    with pytest.raises(ConfigError, match=message):
        spec = parse(VALID.replace(old, new), manager)
        validate_experiment(spec, manager)


def test_output_size_must_match_classes(manager):
    spec = parse(VALID.replace("units = 10", "units = 7"), manager)
    with pytest.raises(ConfigError, match=r"outputs shape \(7,\).*10 classes.*units = 10"):
        validate_experiment(spec, manager)


def test_dense_on_images_without_flatten_is_explained(manager):
    text = VALID.replace('[[model.layers]]\ntype = "flatten"\n', "", 1)
    spec = parse(text, manager)
    with pytest.raises(ConfigError, match=r"layer #1 \(dense\).*flatten"):
        validate_experiment(spec, manager)


def test_invalid_toml_reports_line_and_column(tmp_path, manager):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[dataset\ntype = "mnist"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML: .*line 2"):
        Experiment.load(path, manager=manager)


def test_missing_file(tmp_path, manager):
    with pytest.raises(ConfigError, match="no such experiment file"):
        Experiment.load(tmp_path / "nope.toml", manager=manager)


def test_resolved_config_round_trips(manager):
    spec = parse(VALID, manager)
    text = dumps_toml(spec.to_dict())
    again = parse_experiment(tomllib.loads(text), "again.toml", manager.registry)
    assert again.to_dict() == spec.to_dict()


def test_toml_writer_escapes_and_nests():
    data = {"a": 'quote " and \\ back', "n": 1.5, "b": True, "t": {"x": [1, 2], "u": {"v": "w"}},
            "arr": [{"k": 1}, {"k": 2, "sub": {"z": 0}}]}
    assert tomllib.loads(dumps_toml(data)) == data
