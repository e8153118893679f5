"""examples/numpyml-swish, a real separately installed plugin distribution.

CI (.ci/run) installs it with ``uv pip install -e examples/numpyml-swish`` after the main suite
and runs this file with ``NUMPYML_REQUIRE_EXAMPLE=1`` (then a missing example is a failure, not a
skip), followed by the example's own tests. Locally: ``uv pip install -e examples/numpyml-swish``,
then ``uv run --no-sync pytest tests/test_example_plugin.py`` (plain ``uv run`` re-syncs the
environment to the lock file and uninstalls it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "numpyml-swish"


@pytest.fixture(scope="module")
def example_version() -> str:
    try:
        version = metadata.version("numpyml-swish")
    except metadata.PackageNotFoundError:
        reason = "examples/numpyml-swish is not installed (uv pip install -e examples/numpyml-swish)"
        if os.environ.get("NUMPYML_REQUIRE_EXAMPLE"):
            pytest.fail(f"{reason}; NUMPYML_REQUIRE_EXAMPLE is set, so this is an error, not a skip")
        pytest.skip(reason)
    return version


def numpyml(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numpyml_core.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_installed_version_is_the_example_pyproject_version(example_version):
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert example_version == project["version"]
    assert project["entry-points"]["numpyml"] == {"swish": "numpyml_swish"}


def test_list_json_shows_it_with_its_own_distribution(example_version):
    result = numpyml("list", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    mine = {(c["kind"], c["name"]): c for c in data["components"] if c["distribution"] == "numpyml-swish"}
    assert set(mine) == {("activation", "swish"), ("layer", "swish"), ("layer", "learned_swish"),
                         ("dataset", "spirals"), ("callback", "stop_at_target")}
    assert {(c["plugin"], c["version"]) for c in mine.values()} == {("swish", example_version)}
    assert data["failed"] == []


def test_its_example_experiment_trains(example_version, tmp_path):
    result = numpyml("run", str(EXAMPLE / "experiments" / "spirals.toml"), "--quiet", "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.9
    assert summary["stop_reason"].startswith("validation_accuracy reached")
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["provenance"]["distributions"]["numpyml-swish"] == example_version
    assert config["plugins"] == {"require": ["numpyml-swish>=0.1"]}


def test_numpyml_check_passes_its_components(example_version):
    for kind, name in [("layer", "learned_swish"), ("activation", "swish"), ("dataset", "spirals"),
                       ("callback", "stop_at_target")]:
        result = numpyml("check", kind, name)
        assert result.returncode == 0, result.stdout + result.stderr


def test_too_new_a_requirement_is_refused_before_training(example_version, tmp_path):
    text = (EXAMPLE / "experiments" / "spirals.toml").read_text().replace("numpyml-swish>=0.1", "numpyml-swish>=99")
    path = tmp_path / "needs-newer.toml"
    path.write_text(text)
    result = numpyml("run", str(path), "--quiet", "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert f"numpyml-swish {example_version} is installed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
