"""`numpyml summary` (issue 19 item 3): the figures of a small network computed by hand, from an
experiment file and from a trained model file, as a table and as JSON."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core.cli import app

EXPERIMENT = """
name = "small"
[dataset]
type = "mnist"
[[model.layers]]
type = "conv2d"
filters = 4
kernel_size = 3
activation = "relu"
[[model.layers]]
type = "batch_norm"
[[model.layers]]
type = "max_pool2d"
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "dense"
units = 10
activation = "softmax"
[cost]
type = "cross_entropy"
[optimizer]
type = "sgd"
[training]
batch_size = 16
"""

# by hand, for MNIST's 28x28x1 input:
#   conv2d 3x3, 4 filters, valid: (26, 26, 4); 3*3*1*4 + 4 = 40 parameters; 26*26*4 * 3*3*1 = 24,336 multiply-adds
#   batch_norm: gamma, beta 4 + 4 = 8 trainable, moving mean/variance 8 non-trainable; 26*26*4 = 2,704 (scale and shift)
#   max_pool2d 2: (13, 13, 4), nothing; flatten: (676,)
#   dense 10: 676*10 + 10 = 6,770 parameters; 6,760 multiply-adds
ROWS = [("conv2d", "relu", [26, 26, 4], 40, 0, 24336), ("batch_norm", None, [26, 26, 4], 8, 8, 2704),
        ("max_pool2d", None, [13, 13, 4], 0, 0, 0), ("flatten", None, [676], 0, 0, 0),
        ("dense", "softmax", [10], 6770, 0, 6760)]
TRAINABLE, FROZEN, MACS = 40 + 8 + 6770, 8, 24336 + 2704 + 6760
# activations per sample: input 784 + 2704 + 2704 + 676 + 676 + 10 = 7,554 floats
ACTIVATION_BYTES_16 = 16 * 7554 * 4


def check(report: dict, batch: int) -> None:
    rows = [(r["type"], r["activation"], r["output_shape"], r["parameters"], r["non_trainable"], r["multiply_adds"])
            for r in report["layers"]]
    assert rows == ROWS
    assert report["trainable_parameters"] == TRAINABLE == 6818 and report["non_trainable_parameters"] == FROZEN
    assert report["parameters"] == 6826 and report["parameter_bytes"] == 6826 * 4
    assert report["multiply_adds"] == MACS == 33800 and report["multiply_adds_complete"]
    assert report["batch_size"] == batch and report["activation_bytes"] == ACTIVATION_BYTES_16 * batch // 16


def test_summary_of_an_experiment_file(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(EXPERIMENT)
    result = CliRunner().invoke(app, ["summary", str(path), "--json"])
    assert result.exit_code == 0, result.output
    check(json.loads(result.stdout), 16)  # the experiment's batch_size
    table = CliRunner().invoke(app, ["summary", str(path)], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    for text in ("conv2d (relu)", "(N, 26, 26, 4)", "24,336", "8 + 8", "6,770", "parameters: 6,826 (6,818 trainable, "
                 "8 non-trainable)", "multiply-adds per sample: 33,800", "activations for a batch of 16: 472.12 KB"):
        assert text in table.stdout, text


def test_summary_of_a_model_file(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 255, (40, 28, 28), dtype=np.uint8),
             y_train=np.arange(40) % 10, x_test=np.zeros((10, 28, 28), np.uint8), y_test=np.arange(10))
    table = __import__("tomllib").loads(EXPERIMENT)
    table["dataset"] = {"type": "npz", "path": str(tmp_path / "d.npz")}
    table["training"]["epochs"] = 1
    nm.run(nm.Experiment.from_dict(table), output=tmp_path / "run", progress=False)
    for target in (tmp_path / "run", tmp_path / "run" / "model.safetensors"):
        result = CliRunner().invoke(app, ["summary", str(target), "--json", "--batch-size", "3"])
        assert result.exit_code == 0, result.output
        check(json.loads(result.stdout), 3)


def test_summary_errors_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["summary", str(tmp_path / "nothing.safetensors")])
    assert result.exit_code == 2 and "no such file" in result.stderr and "Traceback" not in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[dataset]\ntype = 'mnist'\n")
    result = CliRunner().invoke(app, ["summary", str(bad)])
    assert result.exit_code == 2 and "missing section" in result.stderr
