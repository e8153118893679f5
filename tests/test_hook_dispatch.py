"""Training hooks reach only a run's own callbacks: each run dispatches through its own pluggy manager, and a
training hook defined at module level in an installed plugin is ignored with one warning naming the plugin."""

from __future__ import annotations

import warnings

import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core import PluginWarning, hookimpl
from numpyml_core.cli import app
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import prepare, register_callbacks, train, unregister_callbacks

from conftest import Recorder

# A plugin written the way a new user might try it: a component, plus a training hook at module level that
# would write a file on every epoch of every run if the plugin manager called it.
MODULE_HOOK = """
from pathlib import Path

from numpyml_core import hookimpl

MARK = Path({mark!r})


class Noisy:
    '''A do-nothing callback, registered properly.'''


@hookimpl
def numpyml_register_components(register):
    register("callback", "fakeplug_noisy", Noisy)


@hookimpl
def numpyml_on_epoch_end(run, epoch, metrics):
    with MARK.open("a") as out:
        out.write(f"{{epoch}}\\n")


@hookimpl
def numpyml_on_run_start(run):
    with MARK.open("a") as out:
        out.write("start\\n")
"""


def plugin_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


@pytest.fixture
def noisy_plugin(make_dist, tmp_path):
    """Install the plugin with module-level training hooks; return the file its hooks would write."""
    mark = tmp_path / "module-hook-called.txt"
    make_dist("fake-noisy-dist", "0.3", {"noisy": "fakeplug_noisy"},
              {"fakeplug_noisy": MODULE_HOOK.format(mark=str(mark))})
    return mark


def test_a_module_level_training_hook_is_ignored_with_one_warning(noisy_plugin, blobs_experiment, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager = get_plugin_manager()
        result = nm.run(blobs_experiment(), output=tmp_path / "run", progress=False)
        nm.run(blobs_experiment(name="again"), output=tmp_path / "again", progress=False)
    assert result.summary["epochs"] == 2
    assert not noisy_plugin.exists(), noisy_plugin.read_text()  # the module's hooks never ran
    (message,) = [m for m in plugin_warnings(caught) if "noisy" in m]  # one warning, however many runs
    assert "plugin 'noisy'" in message and "fake-noisy-dist" in message
    assert "numpyml_on_epoch_end" in message and "numpyml_on_run_start" in message
    assert 'register("callback"' in message and "[[callbacks]]" in message
    # the plugin itself still loads: its component is registered and it is not counted as failed
    assert ("callback", "fakeplug_noisy") in manager.registry.components
    assert not manager.failed


def test_numpyml_list_still_works_with_such_a_plugin(noisy_plugin):
    result = CliRunner().invoke(app, ["list"], catch_exceptions=False)
    assert result.exit_code == 0 and "fakeplug_noisy" in result.stdout
    (line,) = [line for line in result.stderr.splitlines() if "noisy" in line]  # one line: no file name, no source
    assert line.startswith("warning: numpyml: plugin 'noisy' (distribution fake-noisy-dist)")
    assert "plugins that failed to load" not in result.stdout
    assert not noisy_plugin.exists()


def test_the_process_wide_manager_has_no_training_hooks(noisy_plugin):
    with pytest.warns(PluginWarning, match="noisy"):
        manager = get_plugin_manager()
    assert not hasattr(manager.pm.hook, "numpyml_on_epoch_end")
    assert hasattr(manager.pm.hook, "numpyml_register_components")


def test_two_runs_in_one_process_do_not_share_callbacks(blobs_experiment):
    manager = get_plugin_manager()
    first = prepare(nm.Experiment.load(blobs_experiment(name="first")).spec, manager)
    second = prepare(nm.Experiment.load(blobs_experiment(name="second")).spec, manager)
    seen_first, seen_second = Recorder(), Recorder()
    register_callbacks(first, [seen_first])
    register_callbacks(second, [seen_second])
    try:
        train(first)
        assert seen_first.epochs == [1, 2] and seen_second.epochs == []
        train(second)
        assert seen_first.epochs == [1, 2] and seen_second.epochs == [1, 2]
    finally:
        unregister_callbacks(first)
        unregister_callbacks(second)


def test_a_callback_given_to_one_api_run_is_not_called_by_the_next(blobs_experiment, tmp_path):
    recorder = Recorder()
    nm.run(blobs_experiment(), output=tmp_path / "a", progress=False, callbacks=[recorder])
    nm.run(blobs_experiment(name="b"), output=tmp_path / "b", progress=False)
    assert recorder.epochs == [1, 2]
