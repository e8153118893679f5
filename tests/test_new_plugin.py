"""numpyml new-plugin: a ready-to-install distribution whose tests pass out of the box."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest
from typer.testing import CliRunner

from numpyml_core.cli import app
from numpyml_core.plugins import set_plugin_manager
from numpyml_kit.commands import SCAFFOLD_KINDS, plugin_names

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_names():
    assert plugin_names("numpyml-swish") == {"distribution": "numpyml-swish", "module": "numpyml_swish",
                                             "component": "swish", "entry_point": "swish", "class_name": "Swish"}
    assert plugin_names("My-Fancy.Layer")["module"] == "my_fancy_layer"
    assert plugin_names("My-Fancy.Layer")["class_name"] == "MyFancyLayer"


def test_scaffold_layout_and_pyproject(tmp_path):
    result = invoke("new-plugin", "numpyml-scale", "--directory", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    files = sorted(str(p.relative_to(tmp_path / "p")) for p in (tmp_path / "p").rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "experiments/scale.toml", "numpyml_scale/__init__.py",
                     "pyproject.toml", "tests/test_plugin.py", "tests/test_scale.py"]
    project = tomllib.loads((tmp_path / "p" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "numpyml-scale"
    assert project["project"]["entry-points"]["numpyml"] == {"scale": "numpyml_scale"}
    assert project["project"]["dependencies"] == ["numpyml>=0.1"]
    assert "pip install -e ." in result.stdout


def test_every_kind_scaffolds_and_its_tests_pass(tmp_path):
    """One pytest process runs the generated tests of all kinds (the README's 'pytest', uninstalled:
    the entry-point test skips, everything else must pass)."""
    dirs = []
    for kind in SCAFFOLD_KINDS:
        folder = tmp_path / kind
        assert invoke("new-plugin", f"numpyml-my-{kind}", "--kind", kind, "-d", str(folder)).exit_code == 0
        dirs.append(folder)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(d) for d in dirs)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
         "--rootdir", str(tmp_path), *[str(d / "tests") for d in dirs]],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"{len(SCAFFOLD_KINDS)} skipped" in proc.stdout  # only the "is it installed?" tests


def test_generated_experiment_is_valid(tmp_path, make_dist):
    folder = tmp_path / "p"
    invoke("new-plugin", "numpyml-scale", "-d", str(folder))
    # install it as a distribution would be: dist-info + module on sys.path
    make_dist("numpyml-scale", "0.1.0", {"scale": "numpyml_scale"},
              {"numpyml_scale": (folder / "numpyml_scale" / "__init__.py").read_text()})
    set_plugin_manager(None)  # new-plugin loaded the plugins (for their commands); a new process would reload
    result = invoke("validate", str(folder / "experiments" / "scale.toml"))
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    sys.modules.pop("numpyml_scale", None)


def test_refuses_to_overwrite(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = invoke("new-plugin", "numpyml-x", "-d", str(target))
    assert result.exit_code == 2
    assert "never overwrites" in result.stderr
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("new-plugin", "numpyml-x", "-d", str(empty)).exit_code == 0  # an empty folder is fine


@pytest.mark.parametrize("args,message", [
    (["new-plugin", "numpyml-x", "--kind", "layr"], "did you mean 'layer'"),
    (["new-plugin", "9lives"], "not a valid distribution name"),
])
def test_bad_arguments(tmp_path, args, message):
    result = invoke(*args, "-d", str(tmp_path / "x"))
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "x").exists()
