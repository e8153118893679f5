"""End to end on the real data: the shipped experiment files reach their stated accuracy.

These train the full experiments (about 10 s, 55 s and 75 s on a 2-core machine). Without the data
they skip, saying why; CI sets NUMPYML_REQUIRE_REAL_DATA=1, which turns a skip into a failure.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core.cli import app

pytestmark = pytest.mark.realdata


def test_mnist_basic_reaches_the_seed_accuracy(mnist_dir, tmp_path):
    result = nm.run("experiments/mnist.toml", data_dir=str(mnist_dir), output=tmp_path / "run", progress=False)
    summary, run_dir = result.summary, result.run_dir
    assert summary["test_accuracy"] >= 0.95
    assert summary["validation_accuracy"] >= 0.95
    # the saved model reproduces the figure with no experiment file
    result = CliRunner().invoke(app, ["eval", str(run_dir / "model.safetensors"), "--data-dir", str(mnist_dir),
                                      "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(summary["test_accuracy"])


def test_mnist_mlp_reaches_98_percent(mnist_dir, tmp_path):
    summary = nm.run("experiments/mnist_mlp.toml", data_dir=str(mnist_dir), output=tmp_path / "run", progress=False).summary
    assert summary["test_accuracy"] >= 0.98


def test_fashion_mnist_reaches_88_percent(fashion_available, tmp_path):
    from conftest import data_dir

    folder = data_dir()
    summary = nm.run("experiments/fashion_mnist.toml", data_dir=str(folder) if folder else None,
                     output=tmp_path / "run", progress=False).summary
    assert summary["test_accuracy"] >= 0.88
