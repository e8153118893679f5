"""``--set KEY=VALUE`` and ``--print-config`` on run, validate and resume (issue 18, item 1), and
``numpyml_core.parse_overrides``, the parser they share with plugins."""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core import ConfigError
from numpyml_core.cli import app

MNIST = "experiments/mnist.toml"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_parse_overrides_reads_toml_values_and_bare_words():
    assert nm.parse_overrides(["optimizer.learning_rate=0.3", "training.shuffle=true", "a.b=\"he\"",
                               "model.layers.0.shape=[3, 3]", "model.layers.0.activation=relu", "seed = 5",
                               "name=x=y", "seed=6"]) == {
        "optimizer.learning_rate": 0.3, "training.shuffle": True, "a.b": "he", "model.layers.0.shape": [3, 3],
        "model.layers.0.activation": "relu", "seed": 6, "name": "x=y"}  # the later seed wins
    for bad in ("training.epochs", "=3"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            nm.parse_overrides([bad])
    assert "parse_overrides" in nm.__all__ and nm.parse_overrides.__doc__


@pytest.mark.realdata
def test_run_mnist_with_set_writes_the_values_in_config_toml(mnist_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", MNIST, "--set", "optimizer.learning_rate=0.3", "--set", "model.layers.1.units=64",
                    "--set", "training.epochs=1", "--data-dir", mnist_dir, "--output", out, "--quiet")
    assert result.exit_code == 0, result.output
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["optimizer"]["learning_rate"] == 0.3 and config["model"]["layers"][1]["units"] == 64
    assert config["training"]["epochs"] == 1


def test_run_with_set_on_a_synthetic_dataset(blobs_experiment, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", blobs_experiment(), "--set", "optimizer.learning_rate=0.3", "--set",
                    "model.layers.1.units=16", "--set", "model.layers.1.activation=relu", "--set", "training.epochs=1",
                    "--output", out, "--quiet")
    assert result.exit_code == 0, result.output
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["optimizer"]["learning_rate"] == 0.3 and config["training"]["epochs"] == 1
    assert config["model"]["layers"][1]["units"] == 16 and config["model"]["layers"][1]["activation"] == "relu"


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_typo_in_set_exits_2_with_did_you_mean_and_writes_nothing(command, tmp_path):
    output = ["--output", tmp_path / "run"] if command == "run" else []
    result = invoke(command, MNIST, "--set", "model.layers.1.unit=64", *output)
    assert result.exit_code == 2
    assert "override model.layers.1.unit = 64" in result.stderr and "did you mean 'units'" in result.stderr
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_a_malformed_set_is_one_paragraph_and_exit_2(tmp_path):
    result = invoke("run", MNIST, "--set", "training.epochs", "--output", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --set 'training.epochs': expected KEY=VALUE")
    assert result.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


def without_none(value):
    if isinstance(value, dict):
        return {key: without_none(item) for key, item in value.items() if item is not None}
    return [without_none(item) for item in value] if isinstance(value, list) else value


@pytest.mark.parametrize("command", ["run", "validate"])
def test_print_config_prints_the_resolved_experiment_and_trains_nothing(command, tmp_path):
    output = ["--output", tmp_path / "run"] if command == "run" else []
    result = invoke(command, MNIST, "--set", "model.layers.1.units=64", "--set", "optimizer.momentum=0.9",
                    "--set", "model.layers.1.weight_initializer=\"he\"", "--print-config", *output)
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.stdout)
    expected = nm.Experiment.load(MNIST, overrides={"model.layers.1.units": 64, "optimizer.momentum": 0.9,
                                                    "model.layers.1.weight_initializer": "he"})
    assert printed == without_none(expected.to_dict())  # TOML has no null: as in config.toml, None is left out
    assert nm.Experiment.from_dict(printed).to_dict() == expected.to_dict()  # and comes back as the default
    assert printed["optimizer"]["momentum"] == 0.9 and printed["model"]["layers"][1]["weight_initializer"] == "he"
    assert printed["optimizer"]["nesterov"] is False  # defaults filled in
    assert list(tmp_path.iterdir()) == []


def test_resume_takes_set_with_allow_changes(blobs_experiment, tmp_path):
    first = tmp_path / "first"
    assert invoke("run", blobs_experiment(), "--epochs", "1", "--output", first, "--quiet").exit_code == 0
    run_dir = tmp_path / "run"  # a run folder in which nothing was trained yet: resume starts it
    run_dir.mkdir()
    (run_dir / "config.toml").write_text((first / "config.toml").read_text())
    result = invoke("resume", run_dir, "--set", "training.epochs=2", "--quiet")
    assert result.exit_code == 2 and "training.epochs" in result.stderr and "--allow-changes" in result.stderr
    result = invoke("resume", run_dir, "--set", "training.epochs=2", "--allow-changes", "--quiet")
    assert result.exit_code == 0, result.output
    assert tomllib.loads((run_dir / "config.toml").read_text())["training"]["epochs"] == 2
