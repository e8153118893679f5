"""The command line through typer's runner: exit codes, messages, files."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from numpyml_core.cli import app

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)


def test_list_json_has_builtins():
    result = invoke("list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    names = {(c["kind"], c["name"]) for c in data["components"]}
    for expected in [("layer", "dense"), ("layer", "flatten"), ("layer", "reshape"), ("activation", "softmax"),
                     ("initializer", "he"), ("cost", "quadratic"), ("optimizer", "sgd"), ("strategy", "serial"),
                     ("dataset", "fashion_mnist"), ("callback", "progress")]:
        assert expected in names
    assert all(c["distribution"] == "numpyml" and c["version"] == "0.1.0" for c in data["components"])
    assert data["failed"] == []


def test_list_table_and_kind_filter():
    result = invoke("list", "--kind", "optimizer")
    assert result.exit_code == 0
    assert "sgd" in result.stdout and "dense" not in result.stdout
    result = invoke("list", "--kind", "optimiser")
    assert result.exit_code == 2
    assert "did you mean 'optimizer'" in result.stderr


def test_info_prints_parameters():
    result = invoke("info", "layer", "dense")
    assert result.exit_code == 0
    assert "units" in result.stdout and "required" in result.stdout and "use_bias" in result.stdout


def test_info_unknown_component():
    result = invoke("info", "layer", "dens")
    assert result.exit_code == 2
    assert "did you mean 'dense'" in result.stderr
    assert "Traceback" not in result.output


def test_validate_good_and_bad(tmp_path):
    result = invoke("validate", "experiments/mnist.toml")
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(open("experiments/mnist.toml").read().replace("units = 100", "units = -5"))
    result = invoke("validate", str(bad))
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "units" in result.stderr


def test_disable_plugin_option():
    result = invoke("--disable-plugin", "optimizers", "list", "--json")
    assert result.exit_code == 0
    kinds = {c["kind"] for c in json.loads(result.stdout)["components"]}
    assert "optimizer" not in kinds and "layer" in kinds


def test_run_missing_file():
    result = invoke("run", "does/not/exist.toml")
    assert result.exit_code == 2
    assert "does/not/exist.toml: no such experiment file" in result.stderr


def test_run_refuses_non_empty_output(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    result = invoke("run", "experiments/mnist.toml", "--output", str(tmp_path), "--quiet")
    assert result.exit_code == 2
    assert "not empty" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_run_reports_missing_data(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPYML_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    exp = tmp_path / "exp.toml"
    exp.write_text(open("experiments/mnist.toml").read().replace('type = "mnist"', 'type = "mnist"\ndownload = false'))
    result = invoke("run", str(exp), "--data-dir", str(empty), "--output", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 2
    assert str(empty) in result.stderr
    assert not (tmp_path / "out").exists()
