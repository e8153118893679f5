"""numpyml check: contract checks on installed components, a table, exit 1 when one fails."""

from __future__ import annotations

import importlib.util
import json

from typer.testing import CliRunner

from numpyml_core.cli import app

runner = CliRunner()

GOOD_LAYER = """
import numpy as np
from numpyml_core import hookimpl


class Scale:
    '''y = x * gamma per feature.'''

    def __init__(self, units: int):  # a required int: check probes it with a small value
        self.units = units
        self.params, self.grads = {}, {}

    def build(self, input_shape, rng):
        self.params = {"gamma": rng.uniform(0.5, 1.5, size=input_shape[-1]).astype(np.float32)}
        self.grads = {"gamma": np.zeros_like(self.params["gamma"])}
        return tuple(input_shape)

    def forward(self, x, training):
        self._x = x
        return x * self.params["gamma"].astype(x.dtype, copy=False)

    def backward(self, dy):
        self.grads["gamma"][...] = np.sum(dy * self._x, axis=0)
        return dy * self.params["gamma"].astype(dy.dtype, copy=False)  # WRONG_HERE


class NeedsText:
    def __init__(self, path: str):
        self.path = path


@hookimpl
def numpyml_register_components(register):
    register("layer", "fakeplug_scale", Scale)
    register("layer", "fakeplug_needs_text", NeedsText)
"""

WRONG_LAYER = GOOD_LAYER.replace("return dy * self.params", "return 1.1 * dy * self.params")


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_check_one_builtin_passes():
    result = invoke("check", "layer", "dense")
    assert result.exit_code == 0, result.output
    assert "dense" in result.stdout and "pass" in result.stdout and "units=3" in result.stdout


def test_check_a_kind_as_json():
    result = invoke("check", "cost", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {r["name"] for r in data["results"]} >= {"cross_entropy", "quadratic"}
    assert all(r["status"] == "pass" and r["distribution"] == "numpyml" for r in data["results"])
    assert data["failed"] == 0


def test_third_party_layer_passes_then_fails_with_a_wrong_gradient(make_dist):
    make_dist("fakeplug-good", "1.0", {"good": "fakeplug_good"}, {"fakeplug_good": GOOD_LAYER})
    result = invoke("check", "layer", "fakeplug_scale")
    assert result.exit_code == 0, result.output
    assert "fakeplug-good 1.0" in result.stdout


def test_wrong_backward_fails_the_check(make_dist):
    make_dist("fakeplug-wrong", "2.0", {"wrong": "fakeplug_wrong"}, {"fakeplug_wrong": WRONG_LAYER})
    result = invoke("check", "layer", "fakeplug_scale", "--json")
    assert result.exit_code == 1
    (row,) = json.loads(result.stdout)["results"]
    assert row["status"] == "fail" and row["distribution"] == "fakeplug-wrong"
    assert "dx (gradient with respect to the input)" in row["detail"]
    table = invoke("check", "layer")  # the whole kind: the table names it and the exit code says so
    assert table.exit_code == 1
    assert "FAIL" in table.stdout and "fakeplug_scal" in table.stdout
    assert "1 check(s) failed" in table.stderr


def test_needs_parameters_is_skipped_honestly(make_dist):
    make_dist("fakeplug-good", "1.0", {"good": "fakeplug_good"}, {"fakeplug_good": GOOD_LAYER})
    result = invoke("check", "layer", "fakeplug_needs_text", "--json")
    assert result.exit_code == 0
    (row,) = json.loads(result.stdout)["results"]
    assert row["status"] == "skip" and row["detail"].startswith("needs parameters: path")
    reshape = json.loads(invoke("check", "layer", "reshape", "--json").stdout)["results"][0]
    assert reshape["status"] == "skip" and "target_shape" in reshape["detail"]


def test_every_installed_component_and_failed_plugins(make_dist):
    make_dist("fakeplug-broken", "1.0", {"broken": "fakeplug_broken"}, {"fakeplug_broken": "raise ImportError('nope')"})
    # parallel strategies start worker processes (slow); they are checked in their own tests
    result = invoke("--disable-plugin", "parallel", "--disable-plugin", "ray", "check", "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1  # the broken plugin is a failure
    failures = [r for r in data["results"] if r["status"] == "fail"]
    assert [(r["kind"], r["name"]) for r in failures] == [("plugin", "broken")]
    assert "fakeplug-broken" in failures[0]["detail"] and "nope" in failures[0]["detail"]
    names = {(r["kind"], r["name"]) for r in data["results"] if r["status"] == "pass"}
    assert {("layer", "dense"), ("layer", "conv2d"), ("optimizer", "sgd"), ("strategy", "serial"),
            ("callback", "metrics_csv"), ("initializer", "he")} <= names
    # the logger callbacks pass with their extras installed and are skipped, saying what to install, without
    for name, module in (("mlflow", "mlflow"), ("tensorboard", "tensorboardX")):
        (row,) = [r for r in data["results"] if (r["kind"], r["name"]) == ("callback", name)]
        if importlib.util.find_spec(module) is None:
            assert row["status"] == "skip" and "pip install 'numpyml[" in row["detail"], row
        else:
            assert row["status"] == "pass", row


def test_unknown_kind_or_name_is_a_user_error():
    result = invoke("check", "layr")
    assert result.exit_code == 2 and "did you mean 'layer'" in result.stderr
    result = invoke("check", "layer", "dens")
    assert result.exit_code == 2 and "did you mean 'dense'" in result.stderr
