"""The example experiment, run the way a user runs it: needs this distribution installed."""

import json
from importlib import metadata
from pathlib import Path

import pytest

from numpyml_core.cli import run_experiment

EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spirals.toml"


def test_spirals_experiment(tmp_path):
    try:
        metadata.distribution("numpyml-swish")
    except metadata.PackageNotFoundError:
        pytest.skip("numpyml-swish is not installed; run 'pip install -e .' to run its experiment")
    summary, run_dir = run_experiment(EXPERIMENT, output=tmp_path / "run")
    assert summary["test_accuracy"] > 0.9
    assert "validation_accuracy reached" in summary["stop_reason"]
    config = (run_dir / "config.toml").read_text()
    assert '"numpyml-swish" = "0.1.0"' in config or "numpyml-swish = \"0.1.0\"" in config
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == summary["epochs"]
