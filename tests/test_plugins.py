"""Plugin discovery from installed distributions: provenance, failures, duplicates, disabling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from numpyml_core import PluginError, PluginManager
from numpyml_core.errors import ConfigError

GOOD = """
from numpyml_core import hookimpl

class Swish:
    '''x * sigmoid(beta x).'''
    def __init__(self, beta: float = 1.0):
        self.beta = beta

@hookimpl
def numpyml_register_components(register):
    register("activation", "fake_swish", Swish)
"""


def loaded(**kwargs) -> PluginManager:
    manager = PluginManager(**kwargs)
    manager.load_entry_points()
    return manager


def test_builtins_register_with_provenance():
    manager = loaded()
    dense = manager.registry.get("layer", "dense")
    assert dense.distribution == "numpyml"
    assert dense.plugin == "layers"
    assert dense.version == "0.1.0"
    for kind, name in [("strategy", "serial"), ("callback", "progress"), ("callback", "metrics_csv"),
                       ("dataset", "mnist"), ("cost", "cross_entropy"), ("optimizer", "sgd")]:
        assert manager.registry.get(kind, name).distribution == "numpyml"
    assert manager.failed == []


def test_third_party_plugin_is_found_with_its_distribution(make_dist):
    make_dist("fake-swish", "0.3.1", {"swish": "fakeplug_swish"}, {"fakeplug_swish": GOOD})
    manager = loaded()
    component = manager.registry.get("activation", "fake_swish")
    assert (component.plugin, component.distribution, component.version) == ("swish", "fake-swish", "0.3.1")
    assert manager.create("activation", "fake_swish", beta=2).beta == 2.0


def test_broken_import_is_recorded_and_others_work(make_dist, capsys):
    make_dist("fake-broken", "1.0", {"broken": "fakeplug_broken"}, {"fakeplug_broken": "raise RuntimeError('boom')"})
    manager = loaded()
    assert [(f.plugin, f.distribution) for f in manager.failed] == [("broken", "fake-broken")]
    assert "RuntimeError: boom" in manager.failed[0].error
    assert "fake-broken" in capsys.readouterr().err
    assert manager.registry.get("layer", "dense")  # the rest still works


def test_register_hook_that_raises_is_rolled_back(make_dist):
    source = GOOD.replace('register("activation", "fake_swish", Swish)',
                          'register("activation", "fake_swish", Swish)\n    raise ValueError("half way")')
    make_dist("fake-half", "1.0", {"half": "fakeplug_half"}, {"fakeplug_half": source})
    manager = loaded()
    assert "half way" in manager.failed[0].error
    assert ("activation", "fake_swish") not in manager.registry.components


def test_duplicate_name_names_both_distributions(make_dist):
    source = GOOD.replace('"activation", "fake_swish"', '"layer", "dense"')
    make_dist("fake-dup", "2.0", {"dup": "fakeplug_dup"}, {"fakeplug_dup": source})
    manager = loaded()
    (failure,) = manager.failed
    assert "fake-dup" in failure.error and "numpyml" in failure.error
    assert manager.registry.get("layer", "dense").distribution == "numpyml"


def test_strict_mode_makes_failures_fatal(make_dist, monkeypatch):
    make_dist("fake-broken", "1.0", {"broken": "fakeplug_broken"}, {"fakeplug_broken": "import nonexistent_mod"})
    monkeypatch.setenv("NUMPYML_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fake-broken"):
        loaded()


def test_factory_without_signature_is_rejected(make_dist):
    source = GOOD.replace('register("activation", "fake_swish", Swish)', "register('layer', 'fake_builtin', dict)")
    make_dist("fake-nosig", "1.0", {"nosig": "fakeplug_nosig"}, {"fakeplug_nosig": source})
    manager = loaded()
    (failure,) = manager.failed
    assert failure.distribution == "fake-nosig" and "no usable signature" in failure.error


LAZY = """
from numpyml_core import hookimpl

@hookimpl
def numpyml_register_components(register):
    register("activation", "fake_lazy", "fakeplug_lazyimpl:Swish")
    register("activation", "fake_lazy_missing_attr", "fakeplug_lazyimpl:Nope")
"""


def test_lazy_reference_is_imported_on_first_use(make_dist):
    make_dist("fake-lazy", "0.2", {"lazy": "fakeplug_lazy"},
              {"fakeplug_lazy": LAZY, "fakeplug_lazyimpl": GOOD.replace("fake_swish", "unused_swish")})
    manager = loaded()
    import sys

    assert manager.failed == []
    assert "fakeplug_lazyimpl" not in sys.modules  # listed, not imported
    assert manager.registry.get("activation", "fake_lazy").distribution == "fake-lazy"
    assert manager.create("activation", "fake_lazy", beta=3).beta == 3.0
    assert "fakeplug_lazyimpl" in sys.modules
    with pytest.raises(PluginError, match=r"fake_lazy_missing_attr' of plugin 'lazy' \(distribution fake-lazy "
                                          r"0.2\): cannot load 'fakeplug_lazyimpl:Nope': AttributeError"):
        manager.create("activation", "fake_lazy_missing_attr")


@pytest.mark.parametrize("reference,message", [
    ("fakeplug_nowhere:Swish", "module 'fakeplug_nowhere' of 'fakeplug_nowhere:Swish' not found"),
    ("no_colon_here", "a lazy factory must be written 'package.module:attribute'"),
])
def test_lazy_reference_to_a_missing_module_fails_the_plugin(make_dist, reference, message):
    source = LAZY.replace("fakeplug_lazyimpl:Swish", reference)
    make_dist("fake-lazybad", "0.1", {"lazybad": "fakeplug_lazybad"}, {"fakeplug_lazybad": source})
    manager = loaded()
    (failure,) = manager.failed
    assert failure.distribution == "fake-lazybad" and message in failure.error
    assert ("activation", "fake_lazy_missing_attr") not in manager.registry.components  # rolled back


def test_listing_components_imports_no_numpy():
    """numpyml list/--help stay fast: loading every built-in plugin imports no NumPy and no
    implementation module (they register lazy references)."""
    code = (
        "import sys\n"
        "from numpyml_core.plugins import PluginManager\n"
        "m = PluginManager(); m.load_entry_points()\n"
        "assert not m.failed, m.failed\n"
        "assert len(m.registry.all()) > 40\n"
        "print(sorted(k for k in sys.modules if k == 'numpy' or k.startswith('numpy.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_disable_by_entry_point_name(monkeypatch):
    monkeypatch.setenv("NUMPYML_DISABLE_PLUGINS", "datasets, costs")
    manager = loaded()
    assert manager.registry.names("dataset") == []
    assert manager.registry.names("cost") == []
    assert manager.registry.names("layer")
    monkeypatch.delenv("NUMPYML_DISABLE_PLUGINS")
    manager = loaded(disable=["layers"])
    names = manager.registry.names("layer")
    assert "dense" not in names and "conv2d" in names  # only that plugin's layers are gone


def test_unknown_component_suggests_a_name():
    manager = loaded()
    with pytest.raises(ConfigError, match="did you mean 'dense'"):
        manager.create("layer", "dens", units=3)
    with pytest.raises(ConfigError, match="unknown parameter 'unit'.*did you mean 'units'"):
        manager.create("layer", "dense", unit=3)
    with pytest.raises(ConfigError, match="parameter 'units': expected an integer"):
        manager.create("layer", "dense", units="ten")


# -- every failure kind, through the command line -------------------------------------------------
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from numpyml_core import __version__  # noqa: E402
from numpyml_core.cli import app  # noqa: E402

FAILURES = {
    # name: (module source, what the failure message says)
    "import": ("raise RuntimeError('boom at import')", "import failed: RuntimeError: boom at import"),
    "hook": (GOOD.replace('register("activation", "fake_swish", Swish)', "raise KeyError('in the hook')"),
             "register hook raised KeyError"),
    "duplicate": (GOOD.replace('"activation", "fake_swish"', '"layer", "dense"'),
                  f"registered twice: by plugin 'layers' of distribution numpyml {__version__} and by plugin "
                  "'duplicate' of distribution fake-duplicate-dist 0.9. Rename the layer in one of them"),
    "signature": (GOOD.replace('register("activation", "fake_swish", Swish)', "register('layer', 'fakeplug_x', dict)"),
                  "no usable signature"),
}


def install_failure(make_dist, failure: str):
    module = f"fakeplug_{failure}"
    return make_dist(f"fake-{failure}-dist", "0.9", {failure: module}, {module: FAILURES[failure][0]})


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failed_plugin_is_shown_and_every_command_keeps_working(make_dist, failure, tmp_path):
    install_failure(make_dist, failure)
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "--json"], catch_exceptions=False)
    assert listed.exit_code == 0
    (failed,) = json.loads(listed.stdout)["failed"]
    assert failed["distribution"] == f"fake-{failure}-dist" and FAILURES[failure][1] in failed["error"]
    assert f"fake-{failure}-dist" in listed.stderr  # the warning names the distribution
    table = runner.invoke(app, ["list"], catch_exceptions=False)
    assert table.exit_code == 0 and "plugins that failed to load" in table.stdout
    assert runner.invoke(app, ["info", "layer", "dense"], catch_exceptions=False).exit_code == 0
    assert runner.invoke(app, ["check", "layer", "dense"], catch_exceptions=False).exit_code == 0
    assert runner.invoke(app, ["new-plugin", "numpyml-ok", "-d", str(tmp_path / "ok")],
                         catch_exceptions=False).exit_code == 0


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_strict_mode_is_fatal_for_every_failure_kind(make_dist, failure, monkeypatch):
    install_failure(make_dist, failure)
    monkeypatch.setenv("NUMPYML_STRICT_PLUGINS", "1")
    result = CliRunner().invoke(app, ["list"], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"fake-{failure}-dist" in result.stderr and "NUMPYML_STRICT_PLUGINS" in result.stderr
    assert "Traceback" not in result.output


def run_cli(site, *args, strict=False):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("NUMPYML_STRICT_PLUGINS", None)
    if strict:
        env["NUMPYML_STRICT_PLUGINS"] = "1"
    return subprocess.run([sys.executable, "-m", "numpyml_core.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_broken_distribution_through_a_real_process(make_dist):
    site = install_failure(make_dist, "import")
    result = run_cli(site, "list")
    assert result.returncode == 0
    assert "fake-import-dist" in result.stderr and "boom at import" in result.stderr
    assert "dense" in result.stdout and "fake-import-dist" in result.stdout  # the failed-plugins table
    strict = run_cli(site, "list", strict=True)
    assert strict.returncode == 1
    assert strict.stderr.startswith("error: numpyml: plugin 'import' from distribution fake-import-dist failed")
    assert "Traceback" not in strict.stderr


# -- [plugins] require -----------------------------------------------------------------------------
from numpyml_core.config import require_distributions  # noqa: E402

REQUIRING = """
[plugins]
require = [{requirement!r}]
[dataset]
type = "mnist"
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
"""


@pytest.mark.parametrize("requirement,installed,message", [
    ("fake-needed>=0.1", None, "needs the distribution fake-needed ('fake-needed>=0.1'), which is not installed"),
    ("fake-needed>=0.2", "0.1.5", "needs fake-needed>=0.2 but fake-needed 0.1.5 is installed"),
    ("fake_needed>=1.0rc1,<2", "1.0rc1", None),
    ("fake-needed~=1.4", "1.5.2", None),
    ("fake-needed~=1.4", "2.0", "does not satisfy ~=1.4"),
    ("fake-needed==1.*", "1.9", None),
    ("fake-needed!=0.3", "0.3.0", "does not satisfy !=0.3"),
    ("fake-needed", "0.0.1", None),
])
def test_experiment_requirements(make_dist, tmp_path, requirement, installed, message):
    if installed is not None:
        make_dist("fake-needed", installed, {}, {})
    path = tmp_path / "needs.toml"
    path.write_text(REQUIRING.format(requirement=requirement))
    result = CliRunner().invoke(app, ["validate", str(path)], catch_exceptions=False)
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2
        assert message in result.stderr and f"{path}: [plugins]" in result.stderr


def test_requirement_is_checked_before_components_are_looked_up(tmp_path):
    path = tmp_path / "needs.toml"
    path.write_text(REQUIRING.format(requirement="fake-needed>=1").replace('"flatten"', '"not_installed_layer"'))
    result = CliRunner().invoke(app, ["run", str(path), "-o", str(tmp_path / "run")], catch_exceptions=False)
    assert result.exit_code == 2 and "fake-needed" in result.stderr and "not_installed_layer" not in result.stderr
    assert not (tmp_path / "run").exists()  # before training: nothing written


@pytest.mark.parametrize("table,message", [
    ({"requires": []}, "unknown key 'requires' (did you mean 'require'?)"),
    ({"require": "numpyml>=0.1"}, "require must be a list of strings"),
    ({"require": ["numpyml>>0.1"]}, "cannot read the version specifier"),
    ({"require": ["numpyml>=abc"]}, "cannot read the version"),
])
def test_bad_plugins_tables(table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        require_distributions(table, "x.toml")


def test_numpyml_itself_can_be_required():
    assert require_distributions({"require": ["numpyml>=0.1,<1"]}, "x.toml") == ["numpyml>=0.1,<1"]
    with pytest.raises(ConfigError, match="numpyml 0.1.0 is installed"):
        require_distributions({"require": ["numpyml>=0.2"]}, "x.toml")


import re  # noqa: E402
