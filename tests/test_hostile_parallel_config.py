"""Hostile input for the local parallel strategies and the experiment file (issue 15, items 6, 11, 16,
21 and 25): leaked shared memory after SIGKILL, absurd worker counts and processes that cannot
start, TOML nested thousands deep, layers that break the shape their ``build`` promised, huge
values echoed in messages. Every case: one clear paragraph, exit status 2, nothing left behind."""

from __future__ import annotations

import errno
import multiprocessing
import multiprocessing.context
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from blobs import EXPERIMENT, SOURCE
from numpyml_parallel._shared import segment_names
from numpyml_parallel._shared import _owner as segment_owner
from typer.testing import CliRunner

from numpyml_core.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def site(make_dist):
    """The blobs dataset and two broken layers, installed as a fake third-party distribution."""
    return make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs", "liar": "fakeplug_liar"},
                     {"fakeplug_blobs": SOURCE, "fakeplug_liar": LIAR})


def segments_of(pid: int) -> set[str]:
    """The segments and semaphores that process ``pid`` created (its id is in their names): other
    test sessions on the machine may create and remove their own meanwhile."""
    return {name for name in segment_names() if (segment_owner(name.removeprefix("sem.")) or (None,))[0] == pid}


def experiment(tmp_path: Path, text: str, name: str = "exp") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def with_strategy(strategy: str, epochs: int = 2) -> str:
    return EXPERIMENT.replace("epochs = 3", f"epochs = {epochs}") + "[training.strategy]\n" + strategy


# -- item 6: SIGKILL of a sync run's process group leaks no shared memory -------------------------
@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="reads /dev/shm")
def test_segments_of_a_sigkilled_sync_run_are_reclaimed_by_the_next_run(site, tmp_path):
    path = experiment(tmp_path, with_strategy('type = "sync"\nworkers = 2\n', epochs=1000), "long")
    env = {**os.environ, "PYTHONPATH": str(site)}
    process = subprocess.Popen([sys.executable, "-m", "numpyml_core.cli", "run", str(path), "--output",
                                str(tmp_path / "run"), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "run" / "metrics.csv").exists():
            time.sleep(0.1)  # training: workers started, segments in use
        leaked = segments_of(process.pid)
        assert leaked, "no shared memory while training?"
        os.killpg(process.pid, signal.SIGKILL)  # timeout -s KILL, Slurm, the OOM killer: the whole group
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    time.sleep(0.5)  # the group is gone (workers included)
    # the next sync run (here: a short one in a subprocess too) reclaims what the dead run left
    short = experiment(tmp_path, with_strategy('type = "sync"\nworkers = 2\n', epochs=1), "short")
    done = subprocess.run([sys.executable, "-m", "numpyml_core.cli", "run", str(short), "--output",
                           str(tmp_path / "run2"), "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(leaked & set(segment_names())) == []


def test_segments_of_live_runs_are_kept(tmp_path):
    """Reclaiming removes only segments whose owner is dead: this process's own segment stays."""
    import numpy as np
    from numpyml_parallel._shared import SharedArrays, new_token, reclaim_dead_segments

    segment = SharedArrays.create(new_token(), "t", {"a": ((4,), np.float32)})
    try:
        reclaim_dead_segments()
        assert segment.name in segment_names()
    finally:
        segment.unlink()
    assert segment.name not in segment_names()


# -- item 11: absurd worker counts; processes that cannot start -----------------------------------
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_thousand_workers_is_refused_at_validation(site, tmp_path, kind):
    path = experiment(tmp_path, with_strategy(f'type = "{kind}"\nworkers = 1000\n'))
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    message = result.output
    assert str(path) in message and "[training.strategy]" in message and "workers" in message
    assert "1000" in message and str(4 * (os.cpu_count() or 1)) in message and "NUMPYML_MAX_WORKERS" in message
    assert "Traceback" not in message


def test_the_worker_bound_can_be_raised_explicitly(site, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPYML_MAX_WORKERS", "1000")
    path = experiment(tmp_path, with_strategy('type = "sync"\nworkers = 1000\n'))
    assert invoke("validate", str(path)).exit_code == 0
    monkeypatch.setenv("NUMPYML_MAX_WORKERS", "many")
    result = invoke("validate", str(path))
    assert result.exit_code == 2 and "NUMPYML_MAX_WORKERS" in result.output


def test_ray_strategies_take_the_same_bound():
    from numpyml_ray.strategies import RayAsync, RaySync

    for factory in (RaySync, RayAsync):
        with pytest.raises(ValueError, match="NUMPYML_MAX_WORKERS"):
            factory(workers=100_000)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_worker_that_cannot_start_stops_the_others_and_frees_shared_memory(site, tmp_path, monkeypatch, kind):
    original = multiprocessing.context.SpawnProcess.start
    started = []

    def start(self):
        if len(started) == 1:  # the second process: the machine is out of processes
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        original(self)
        started.append(self.pid)

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", start)
    path = experiment(tmp_path, with_strategy(f'type = "{kind}"\nworkers = 2\nlocal_share = false\n'))
    result = invoke("run", str(path), "--output", str(tmp_path / "run"), "--quiet")
    assert result.exit_code == 2, result.output
    assert "could not start parallel worker 1" in result.output and "workers" in result.output
    assert "Resource temporarily unavailable" in result.output and "Traceback" not in result.output
    assert len(started) == 1
    assert multiprocessing.active_children() == []
    time.sleep(0.2)
    assert not Path(f"/proc/{started[0]}").exists(), "the worker that started was left running"
    assert sorted(segments_of(os.getpid())) == []


# -- item 16: TOML nested thousands deep ---------------------------------------------------------
DEEP = 3000


@pytest.mark.parametrize("case, text", [
    ("array", EXPERIMENT.replace("batch_size = 16", "batch_size = " + "[" * DEEP + "]" * DEEP)),
    ("inline table", EXPERIMENT.replace("batch_size = 16", "batch_size = " + "{a = " * DEEP + "1" + "}" * DEEP)),
    ("activation table", EXPERIMENT.replace(
        'activation = "tanh"', '[model.layers.activation]\ntype = "leaky_relu"\n[model.layers.activation'
        + ".alpha" * DEEP + "]")),
    ("moderate", EXPERIMENT.replace("batch_size = 16", "batch_size = " + "[" * 40 + "]" * 40)),
])
def test_deeply_nested_toml_is_a_clear_error(site, tmp_path, case, text):
    path = experiment(tmp_path, text)
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and "nested too deep" in result.output, result.output
    assert len(result.output) < 600


def test_depth_check_is_iterative():
    from numpyml_core import ConfigError
    from numpyml_core.config import reject_deep_nesting

    node: dict = {}
    root = node
    for _ in range(100_000):  # far beyond the interpreter's recursion limit
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ConfigError, match="nested too deep"):
        reject_deep_nesting(root, "x.toml")
    reject_deep_nesting({"a": [{"b": [1, 2, {"c": 3}]}]}, "x.toml")


# -- item 21: a layer whose forward breaks the shape its build promised ------------------------
LIAR = '''
import numpy as np
from numpyml_core import hookimpl


class Liar:
    """build promises the input shape; forward returns one column."""

    def build(self, input_shape, rng):
        self.params, self.grads = {}, {}
        return tuple(input_shape)

    def forward(self, x, training):
        return x[:, :1]

    def backward(self, dy):
        return dy


class Raiser(Liar):
    """forward raises."""

    def forward(self, x, training):
        raise RuntimeError("boom in forward")


@hookimpl
def numpyml_register_components(register):
    register("layer", "fakeplug_liar", Liar)
    register("layer", "fakeplug_raiser", Raiser)
'''


def liar_experiment(tmp_path: Path, layer: str) -> Path:
    return experiment(tmp_path, EXPERIMENT.replace(
        '[[model.layers]]\ntype = "flatten"', f'[[model.layers]]\ntype = "flatten"\n[[model.layers]]\ntype = "{layer}"'))


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_layer_breaking_its_promised_shape_is_named(site, tmp_path, command):
    path = liar_experiment(tmp_path, "fakeplug_liar")
    args = [command, str(path)] + (["--output", str(tmp_path / "run"), "--quiet"] if command == "run" else [])
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    message = result.output
    assert str(path) in message and "layer #2 (fakeplug_liar)" in message
    assert "(2, 1)" in message and "(2, 36)" in message and "Traceback" not in message
    if command == "run":
        assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_layer_whose_forward_raises_is_named(site, tmp_path):
    path = liar_experiment(tmp_path, "fakeplug_raiser")
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    assert "layer #2 (fakeplug_raiser)" in result.output and "boom in forward" in result.output


def test_the_shape_probe_passes_builtin_networks_and_changes_nothing(site, tmp_path):
    """Batch norm and dropout in the probe: inference mode, running statistics untouched."""
    import numpy as np

    import numpyml_core as nm
    from numpyml_core.plugins import get_plugin_manager
    from numpyml_core.trainer import build_model, random_generators

    path = experiment(tmp_path, EXPERIMENT.replace(
        '[[model.layers]]\ntype = "dense"\nunits = 10',
        '[[model.layers]]\ntype = "batch_norm"\n[[model.layers]]\ntype = "dropout"\nrate = 0.5\n'
        '[[model.layers]]\ntype = "dense"\nunits = 10'))
    manager = get_plugin_manager()
    spec = nm.Experiment.load(path, manager=manager).spec
    model = build_model(spec, manager, (6, 6, 1), random_generators(0)[0])  # probes once
    state = {k: v.copy() for k, v in model.state().items()}
    params = {k: v.copy() for k, v in model.params().items()}
    model.check_forward_shapes()
    assert state and all(np.array_equal(v, model.state()[k]) for k, v in state.items())
    assert all(np.array_equal(v, model.params()[k]) for k, v in params.items())


# -- item 25: huge values are shortened in messages ---------------------------------------------
@pytest.mark.parametrize("replace, key", [
    (("batch_size = 16", "batch_size = [" + ", ".join(["1"] * 300_000) + "]"), "batch_size"),
    (("units = 32", 'units = "' + "x" * 300_000 + '"'), "units"),
    (("units = 32", "units = 32\n" + "k" * 300_000 + " = 1"), "k"),
    (("[training]", '[training]\nstrategy = {type = "async", staleness = "' + "y" * 300_000 + '"}'), "staleness"),
])
def test_huge_values_are_shortened_in_messages(site, tmp_path, replace, key):
    path = experiment(tmp_path, EXPERIMENT.replace(*replace))
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output[:500]
    assert key in result.output and str(path) in result.output
    assert len(result.output) < 400, result.output[:500]
    assert "300,000" in result.output


def test_shorten_notes_the_length():
    from numpyml_core.errors import shorten

    assert shorten(16) == "16"
    assert shorten("abc") == "'abc'"
    text = shorten(list(range(300_000)))
    assert len(text) <= 100 and "300,000 items" in text and text.startswith("[0, 1")
    text = shorten("z" * 10_000)
    assert len(text) <= 100 and "10,000 characters" in text
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    assert len(shorten(deep)) <= 100
