"""Hostile and broken plugins, missing optional extras, and what the plugin commands print about them.

Issue 15, items 18, 19, 20, 28, 29 and 31 (``list`` truncation): a plugin that exits or raises
KeyboardInterrupt while loading is a failed plugin (a real Ctrl-C still interrupts); components
whose optional extra is missing are skipped by ``check``; ``info`` on a component whose lazy module
fails prints one line; rich markup in plugin text and install hints is shown literally; a plugin
that registers nothing is named; ``list`` never truncates a name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from numpyml_core import PluginManager
from numpyml_core.cli import app

runner = CliRunner()

GOOD = """
from numpyml_core import hookimpl

class Swish:
    '''x * sigmoid(beta x).'''
    def __init__(self, beta: float = 1.0):
        self.beta = beta

@hookimpl
def numpyml_register_components(register):
    register("activation", "fakeplug_swish", Swish)
"""


def invoke(*args, env=None):
    return runner.invoke(app, list(args), catch_exceptions=False, env=env)


# -- item 18: sys.exit() and KeyboardInterrupt from plugin code ------------------------------------
EXITS = {
    # name: (module source, what the failure says)
    "exit_at_import": ("import sys\nsys.exit(3)", "called sys.exit(3)"),
    "exit_none_at_import": ("raise SystemExit", "called sys.exit(None)"),
    "interrupt_at_import": ("raise KeyboardInterrupt", "raised KeyboardInterrupt itself"),
    "exit_in_hook": (GOOD.replace('register("activation", "fakeplug_swish", Swish)', "import sys; sys.exit('bye')"),
                     "called sys.exit('bye')"),
    "interrupt_in_hook": (GOOD.replace('register("activation", "fakeplug_swish", Swish)', "raise KeyboardInterrupt"),
                          "raised KeyboardInterrupt itself"),
}


@pytest.mark.parametrize("case", sorted(EXITS))
def test_plugin_that_exits_or_interrupts_is_a_failed_plugin(make_dist, case):
    source, message = EXITS[case]
    make_dist(f"fake-{case}", "1.0", {case: f"fakeplug_{case}"}, {f"fakeplug_{case}": source})
    make_dist("fake-good", "1.0", {"good": "fakeplug_good"}, {"fakeplug_good": GOOD})
    listed = invoke("list", "--json")
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    (failed,) = data["failed"]
    assert failed["plugin"] == case and failed["distribution"] == f"fake-{case}" and message in failed["error"]
    names = {(c["kind"], c["name"]) for c in data["components"]}
    assert ("activation", "fakeplug_swish") in names and ("layer", "dense") in names  # the others still load
    assert f"fake-{case}" in listed.stderr and "Traceback" not in listed.output
    assert invoke("info", "layer", "dense").exit_code == 0
    assert invoke("check", "cost", "quadratic").exit_code == 0


def run_cli(site, *args, timeout=120):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("NUMPYML_STRICT_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "numpyml_core.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_sys_exit_at_import_through_a_real_process(make_dist):
    site = make_dist("fake-exit", "1.0", {"exit": "fakeplug_exit"}, {"fakeplug_exit": "import sys\nsys.exit(7)"})
    result = run_cli(site, "list", "--kind", "cost")
    assert result.returncode == 0, result.stderr
    assert "cross_entropy" in result.stdout
    assert "fake-exit" in result.stderr and "called sys.exit(7)" in result.stderr


def test_a_real_ctrl_c_while_plugins_load_still_interrupts(make_dist):
    # a real SIGINT arrives while the plugin imports: the user wants to stop, so loading stops
    source = "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)\n"
    site = make_dist("fake-slow", "1.0", {"slow": "fakeplug_slow"}, {"fakeplug_slow": source})
    result = run_cli(site, "list", timeout=60)
    assert result.returncode in (130, -signal.SIGINT), (result.returncode, result.stderr)
    assert "cross_entropy" not in result.stdout


def test_plugin_that_installs_no_exit_keeps_the_ctrl_c_handler(make_dist):
    make_dist("fake-exit", "1.0", {"exit": "fakeplug_exit"}, {"fakeplug_exit": "raise SystemExit(1)"})
    before = signal.getsignal(signal.SIGINT)
    manager = PluginManager()
    manager.load_entry_points()
    assert signal.getsignal(signal.SIGINT) is before
    assert [f.plugin for f in manager.failed] == ["exit"]


# -- item 19 (and 0): components whose optional extra is not installed ----------------------------
@pytest.fixture
def no_logger_extras(monkeypatch):
    """As if mlflow and tensorboardX were not installed (``None`` in sys.modules makes import fail)."""
    for module in ("mlflow", "tensorboardX"):
        monkeypatch.setitem(sys.modules, module, None)


def test_check_skips_a_callback_whose_extra_is_missing(no_logger_extras):
    result = invoke("check", "callback", "mlflow", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "skip" in result.stdout and "Traceback" not in result.output
    assert "pip install 'numpyml[mlflow]'" in result.stdout  # the hint, [mlflow] not eaten as markup
    data = json.loads(invoke("check", "callback", "--json").stdout)
    rows = {r["name"]: r for r in data["results"]}
    for name, extra in (("mlflow", "mlflow"), ("tensorboard", "tensorboard")):
        assert rows[name]["status"] == "skip", rows[name]
        assert rows[name]["detail"].startswith("optional dependency not installed")
        assert f"pip install 'numpyml[{extra}]'" in rows[name]["detail"]
    assert rows["metrics_csv"]["status"] == "pass" and data["failed"] == 0


def test_check_everything_without_the_extras(no_logger_extras):
    result = invoke("--disable-plugin", "parallel", "--disable-plugin", "ray", "check", "callback")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_a_constructor_that_crashes_fails_the_check_without_a_traceback(make_dist):
    source = GOOD.replace("self.beta = beta", "raise RuntimeError('constructor exploded')")
    make_dist("fake-crash", "1.0", {"crash": "fakeplug_crash"}, {"fakeplug_crash": source})
    result = invoke("check", "activation", "fakeplug_swish", "--json")
    assert result.exit_code == 1
    (row,) = json.loads(result.stdout)["results"]
    assert row["status"] == "fail" and "RuntimeError: constructor exploded" in row["detail"]


# -- item 20: info on a component whose lazy module fails to import ------------------------------
LAZY = """
from numpyml_core import hookimpl

@hookimpl
def numpyml_register_components(register):
    register("layer", "fakeplug_lazy", "fakeplug_lazy_impl:Layer")
"""


def test_info_on_a_lazy_component_whose_module_fails_prints_one_line(make_dist):
    make_dist("fake-lazy", "1.0", {"lazy": "fakeplug_lazy"},
              {"fakeplug_lazy": LAZY, "fakeplug_lazy_impl": "raise RuntimeError('heavy dependency missing')"})
    result = runner.invoke(app, ["info", "layer", "fakeplug_lazy"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1  # like validate, run and check: a broken plugin (docs/plugins.md)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: layer 'fakeplug_lazy' of plugin 'lazy'")
    assert "fake-lazy 1.0" in lines[0] and "RuntimeError: heavy dependency missing" in lines[0]
    assert "Traceback" not in result.output


def test_info_on_a_lazy_module_that_exits_is_one_line_too(make_dist):
    make_dist("fake-lazy", "1.0", {"lazy": "fakeplug_lazy"},
              {"fakeplug_lazy": LAZY, "fakeplug_lazy_impl": "import sys\nsys.exit(4)"})
    result = runner.invoke(app, ["info", "layer", "fakeplug_lazy"])
    assert result.exit_code == 1 and "called sys.exit(4)" in result.stderr


# -- item 28: markup in plugin text and install hints; check KIND with a failed plugin ------------
MARKUP = """
from numpyml_core import hookimpl

class Needs:
    '''Needs [bold]extra[/bold]: pip install 'numpyml[ray]'.'''
    def __init__(self, x: int = 1):
        raise ValueError("needs [ray]: pip install 'numpyml[ray]'")

@hookimpl
def numpyml_register_components(register):
    register("activation", "fakeplug_needs", Needs)
"""


def test_check_prints_install_hints_and_plugin_text_literally(make_dist):
    make_dist("fake-markup", "1.0", {"markup": "fakeplug_markup"}, {"fakeplug_markup": MARKUP})
    result = invoke("check", "activation", "fakeplug_needs", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "needs [ray]: pip install 'numpyml[ray]'" in result.stdout


def test_list_and_info_print_plugin_text_literally(make_dist):
    broken = "raise RuntimeError(\"install [red]it[/red] with pip install 'numpyml[ray]'\")"
    make_dist("fake-brokenmarkup", "1.0", {"brokenmarkup": "fakeplug_brokenmarkup"},
              {"fakeplug_brokenmarkup": broken})
    result = invoke("list", env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "install [red]it[/red] with pip install 'numpyml[ray]'" in result.stdout


def test_ray_install_hint_is_not_eaten_by_markup():
    pytest.importorskip("numpyml_ray")
    import importlib.util

    if importlib.util.find_spec("ray") is not None:
        pytest.skip("Ray is installed: its strategies build, no install hint is shown")
    result = invoke("check", "strategy", "ray_sync", env={"COLUMNS": "250"})
    assert "pip install 'numpyml[ray]'" in result.stdout


def test_check_kind_fails_when_a_plugin_failed_to_load(make_dist):
    make_dist("fake-broken", "1.0", {"broken": "fakeplug_broken"}, {"fakeplug_broken": "raise ImportError('nope')"})
    result = invoke("check", "cost", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    failures = [r for r in data["results"] if r["status"] == "fail"]
    assert [(r["kind"], r["name"]) for r in failures] == [("plugin", "broken")]
    assert "nope" in failures[0]["detail"] and data["failed"] == 1
    table = invoke("check", "cost", env={"COLUMNS": "200"})
    assert table.exit_code == 1 and "broken" in table.stdout and "failed to load" in table.stdout
    # the one component asked for, found and passing: its check is what was asked
    assert invoke("check", "cost", "quadratic").exit_code == 0


def test_check_of_a_kind_only_a_failed_plugin_would_provide(make_dist):
    make_dist("fake-broken", "1.0", {"broken": "fakeplug_broken"}, {"fakeplug_broken": "raise ImportError('nope')"})
    result = invoke("check", "widget")
    assert result.exit_code == 2
    assert "no installed component of kind 'widget'" in result.stderr
    assert "'broken' (fake-broken) failed to load" in result.stderr


def test_check_help_documents_the_exit_status():
    result = invoke("check", "--help", env={"COLUMNS": "200"})
    assert "plugin failed to load" in " ".join(result.stdout.split())


# -- item 29: a plugin that registers nothing ----------------------------------------------------
NO_HOOKIMPL = GOOD.replace("@hookimpl\n", "")
EMPTY = {
    "nohookimpl": (NO_HOOKIMPL, "not marked @hookimpl"),
    "nohook": ("X = 1\n", "defines no numpyml_register_components"),
    "typo": (GOOD.replace("def numpyml_register_components", "def numpyml_register_component"),
             "did you mean 'numpyml_register_component'"),
    "registersnothing": (GOOD.replace('register("activation", "fakeplug_swish", Swish)', "pass"),
                         "registered no component"),
}


@pytest.mark.parametrize("case", sorted(EMPTY))
def test_a_plugin_that_registers_no_component_is_named(make_dist, case):
    source, message = EMPTY[case]
    make_dist(f"fake-{case}", "1.0", {case: f"fakeplug_{case}"}, {f"fakeplug_{case}": source})
    data = json.loads(invoke("list", "--json").stdout)
    (failed,) = data["failed"]
    assert failed["plugin"] == case and failed["distribution"] == f"fake-{case}"
    assert "registered no component" in failed["error"] and message in failed["error"]
    table = invoke("list", env={"COLUMNS": "250"})
    assert f"fake-{case}" in table.stdout and "registered no component" in table.stdout
    checked = json.loads(invoke("check", "activation", "--json").stdout)
    assert any(r["kind"] == "plugin" and r["name"] == case for r in checked["results"])


def test_the_hookimpl_hint_says_how_to_fix_it(make_dist):
    make_dist("fake-nohookimpl", "1.0", {"nohookimpl": "fakeplug_nohookimpl"}, {"fakeplug_nohookimpl": NO_HOOKIMPL})
    (failed,) = json.loads(invoke("list", "--json").stdout)["failed"]
    assert "from numpyml_core import hookimpl" in failed["error"]


# -- item 31: list never truncates a name --------------------------------------------------------
@pytest.mark.parametrize("columns", ["80", "120"])
def test_list_never_truncates_names(columns, make_dist):
    long_name = "fakeplug_an_activation_with_a_long_name"  # 39 characters: fits beside the others at 80
    make_dist("fake-long", "1.0", {"long": "fakeplug_long"},
              {"fakeplug_long": GOOD.replace('"fakeplug_swish"', repr(long_name))})
    result = invoke("list", env={"COLUMNS": columns})
    assert result.exit_code == 0
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)
    for name in ("global_average_pooling2d", "batch_normalization", long_name):
        assert name in result.stdout, f"{name} is cut at {columns} columns:\n{result.stdout}"


def test_list_on_a_very_narrow_terminal_folds_names_but_never_cuts_them():
    result = invoke("list", "--kind", "layer", env={"COLUMNS": "50"})
    assert result.exit_code == 0
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 50
    name_cells = [line.split("│")[2].strip() for line in result.stdout.splitlines() if line.startswith("│")]
    assert "global_average_pooling2d" in "".join(name_cells)
