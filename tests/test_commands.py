"""Plugin commands: the ``numpyml_register_commands`` hook, --disable-plugin, and commands of failed plugins."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from numpyml_core.cli import app

# The third-party example of CONTRIBUTING.md ("Adding a command"), as an installed distribution.
HELLO = '''
import typer

from numpyml_core import UserError, hookimpl
from numpyml_core.plugin_api import plugin_manager, user_errors


@hookimpl
def numpyml_register_commands(app):
    @app.command()
    def hello(name: str = typer.Option("world", help="Who to greet.")) -> None:
        """Greet someone, and count the installed layers."""
        with user_errors():
            if not name:
                raise UserError("--name: give a name, got an empty one.")
            layers = plugin_manager().registry.names("layer")
        print(f"hello {name}; {len(layers)} layers installed")
'''

BUILT_IN = ("report", "runs", "show", "predict", "new-plugin", "check")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def commands_in_help(*options: str, ordered: bool = False) -> set[str] | list[str]:
    result = invoke(*options, "--help")
    assert result.exit_code == 0, result.output
    panel = result.stdout.split("Commands")[1]
    names = [line.split()[1] for line in panel.splitlines() if line.startswith("│ ") and line[2:3].strip()]
    return names if ordered else set(names)


def test_help_lists_the_built_in_plugins_commands_by_name():
    listed = commands_in_help(ordered=True)
    assert set(BUILT_IN) | {"run", "resume", "list", "info", "validate", "eval"} <= set(listed)
    assert listed == sorted(listed)


def test_the_core_has_no_command_of_its_own():
    """run, resume, validate and eval come from the built-in plugin 'runner', like any third party's commands."""
    assert not app.registered_commands and not app.registered_groups
    help_text = commands_in_help("--disable-plugin", "runner")
    assert not {"run", "resume", "validate", "eval"} & help_text and {"list", "report"} <= help_text
    result = invoke("--disable-plugin", "runner", "run", "experiments/mnist.toml")
    assert result.exit_code == 2 and "No such command 'run'" in result.stderr


def test_a_third_party_plugin_adds_a_command(make_dist):
    make_dist("numpyml-hello", "0.1", {"hello": "fakeplug_hello"}, {"fakeplug_hello": HELLO})
    assert "hello" in commands_in_help()
    result = invoke("hello", "--name", "Ada")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("hello Ada;") and "layers installed" in result.stdout
    assert "failed" not in result.stderr  # a plugin with commands and no component is a working plugin
    result = invoke("hello", "--name", "")
    assert result.exit_code == 2 and result.stderr == "error: --name: give a name, got an empty one.\n"


def test_disable_plugin_removes_its_commands(make_dist):
    make_dist("numpyml-hello", "0.1", {"hello": "fakeplug_hello"}, {"fakeplug_hello": HELLO})
    assert "hello" not in commands_in_help("--disable-plugin", "hello")
    result = invoke("--disable-plugin", "hello", "hello")
    assert result.exit_code == 2 and "No such command 'hello'" in result.stderr
    help_text = commands_in_help("--disable-plugin", "report")
    assert not {"report", "runs", "show", "predict"} & help_text and {"new-plugin", "check"} <= help_text
    assert invoke("--disable-plugin", "report", "runs").exit_code == 2
    assert invoke("--disable-plugin", "kit", "runs", "--help").exit_code == 0


def test_a_command_of_a_plugin_that_failed_to_load_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "numpyml_report", None)  # importing the report plugin now fails
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert ("error: the command 'report' comes from plugin 'report' (distribution numpyml), which failed to load: "
            "import failed: ModuleNotFoundError") in result.stderr
    assert "Traceback" not in result.stderr and "No such command" not in result.stderr
    result = invoke("runs", str(tmp_path))  # another of its commands: the failed plugins are named
    assert result.exit_code == 1
    assert ("no such command 'runs' (did you mean 'run'?). It may come from a plugin that failed to load: "
            "'report' (numpyml: import failed") in result.stderr
    result = invoke("rnu")
    assert result.exit_code == 1 and "no such command 'rnu' (did you mean 'run'?). It may come from" in result.stderr
    assert invoke("check", "cost", "quadratic").exit_code == 0  # the other plugins' commands work


def test_a_command_hook_that_raises_fails_its_plugin_only(make_dist):
    broken = HELLO.replace("    @app.command()", "    raise RuntimeError('no commands today')\n    @app.command()")
    make_dist("numpyml-hello", "0.1", {"hello": "fakeplug_hello"}, {"fakeplug_hello": broken})
    result = invoke("hello")
    assert result.exit_code == 1
    assert ("plugin 'hello' from distribution numpyml-hello failed: register_commands hook raised RuntimeError: "
            "no commands today") in result.stderr
    assert "the command 'hello' comes from plugin 'hello'" in result.stderr
    assert invoke("runs", "--help").exit_code == 0


def test_a_command_named_like_another_is_ignored_with_a_warning(make_dist):
    clash = HELLO.replace("@app.command()", '@app.command("runs")')
    make_dist("numpyml-hello", "0.1", {"hello": "fakeplug_hello"}, {"fakeplug_hello": clash})
    result = invoke("runs", "--help")
    assert result.exit_code == 0 and "A table of the runs" in result.stdout  # the report plugin's, loaded first
    assert "the command 'runs' of plugin 'hello' is ignored: plugin 'report' already provides" in result.stderr


def test_contributing_shows_this_very_plugin():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    shown = text.split('hello = "numpyml_hello"\n', 1)[1].split("```", 1)[0]
    assert shown.strip() == HELLO.strip()
