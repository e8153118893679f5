"""The example experiment, run the way a user runs it: needs this distribution installed."""

from importlib import metadata
from pathlib import Path

import pytest

import numpyml_core as nm

EXPERIMENT = Path(__file__).parent.parent / "experiments" / "spirals.toml"


def test_spirals_experiment(tmp_path):
    try:
        metadata.distribution("numpyml-swish")
    except metadata.PackageNotFoundError:
        pytest.skip("numpyml-swish is not installed; run 'pip install -e .' to run its experiment")
    result = nm.run(EXPERIMENT, output=tmp_path / "run", progress=False)
    summary = result.summary
    assert summary["test_accuracy"] > 0.9
    assert "validation_accuracy reached" in summary["stop_reason"]
    config = result.folder.read_config()
    assert config["provenance"]["distributions"]["numpyml-swish"] == "0.1.0"
    assert result.folder.read_summary() == summary
