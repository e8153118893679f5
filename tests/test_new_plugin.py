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
                     "numpyml_scale/layer.py", "pyproject.toml", "tests/test_layer.py", "tests/test_plugin.py"]
    project = tomllib.loads((tmp_path / "p" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "numpyml-scale"
    assert project["project"]["entry-points"]["numpyml"] == {"scale": "numpyml_scale"}
    assert project["project"]["dependencies"] == ["numpyml>=0.1,<0.2"]  # as docs/plugins.md advises while 0.x
    assert f"uv pip install -e {(tmp_path / 'p').resolve()}" in result.stdout  # into numpyml's environment
    assert 'register("layer", "scale", "numpyml_scale.layer:Scale")' in (tmp_path / "p" / "numpyml_scale" /
                                                                        "__init__.py").read_text()


def test_several_kinds_make_a_module_each_and_one_registration_hook(tmp_path):
    result = invoke("new-plugin", "numpyml-extras", "--kind", "activation, optimizer,callback,optimizer",
                    "-d", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    files = sorted(str(p.relative_to(tmp_path / "p")) for p in (tmp_path / "p").rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "experiments/extras_activation.toml",
                     "experiments/extras_callback.toml", "experiments/extras_optimizer.toml",
                     "numpyml_extras/__init__.py", "numpyml_extras/activation.py", "numpyml_extras/callback.py",
                     "numpyml_extras/optimizer.py", "pyproject.toml", "tests/test_activation.py",
                     "tests/test_callback.py", "tests/test_optimizer.py", "tests/test_plugin.py"]
    hook = (tmp_path / "p" / "numpyml_extras" / "__init__.py").read_text().split("def numpyml_register_components")[1]
    assert hook.count("register(") == 4  # the activation twice (activation and layer), the others once
    assert "the optimizer 'extras_optimizer'" in result.stdout


def run_pytest(folders, tmp_path, pythonpath):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(d) for d in pythonpath)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
         "--rootdir", str(tmp_path), *[str(d / "tests") for d in folders]],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )


def test_every_kind_scaffolds_and_its_tests_pass(tmp_path):
    """One pytest process runs the generated tests of all kinds, one kind a plugin and all in one (the README's
    'pytest', uninstalled: the entry-point tests skip, everything else must pass)."""
    dirs = []
    for kind in [*SCAFFOLD_KINDS, ",".join(SCAFFOLD_KINDS)]:
        folder = tmp_path / ("all" if "," in kind else kind)
        name = "numpyml-all" if "," in kind else f"numpyml-my-{kind}"
        assert invoke("new-plugin", name, "--kind", kind, "-d", str(folder)).exit_code == 0
        dirs.append(folder)
    proc = run_pytest(dirs, tmp_path, dirs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"{len(SCAFFOLD_KINDS) + 1} skipped" in proc.stdout  # only the "is it installed?" tests


def test_an_installed_scaffold_passes_its_tests_entry_point_included(tmp_path, make_dist):
    """Installed (a dist-info with the entry point, the package importable), the generated tests all pass:
    the kit's numpyml_plugin fixture finds the distribution and its four registrations."""
    folder = tmp_path / "extras"
    assert invoke("new-plugin", "numpyml-extras", "--kind", "activation,optimizer,callback", "-d",
                  str(folder)).exit_code == 0
    site = make_dist("numpyml-extras", "0.1.0", {"extras": "numpyml_extras"}, {})
    proc = run_pytest([folder], tmp_path, [site, folder])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "skipped" not in proc.stdout and " passed" in proc.stdout


def test_generated_experiment_is_valid(tmp_path, make_dist, monkeypatch):
    folder = tmp_path / "p"
    invoke("new-plugin", "numpyml-scale", "-d", str(folder))
    # install it as a distribution would be: dist-info + package on sys.path
    make_dist("numpyml-scale", "0.1.0", {"scale": "numpyml_scale"}, {})
    monkeypatch.syspath_prepend(str(folder))
    set_plugin_manager(None)  # new-plugin loaded the plugins (for their commands); a new process would reload
    try:
        result = invoke("validate", str(folder / "experiments" / "scale.toml"))
        assert result.exit_code == 0, result.output
        assert "valid" in result.stdout
    finally:
        for module in [m for m in sys.modules if m.partition(".")[0] == "numpyml_scale"]:
            del sys.modules[module]


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
    (["new-plugin", "numpyml-x", "--kind", "activation,optimiser"], "did you mean 'optimizer'"),
    (["new-plugin", "numpyml-x", "--kind", " , "], "name at least one kind"),
    (["new-plugin", "9lives"], "not a valid distribution name"),
])
def test_bad_arguments(tmp_path, args, message):
    result = invoke(*args, "-d", str(tmp_path / "x"))
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "x").exists()
