"""The sync and async strategies: same parameters as serial, staleness rules, and robustness
(worker errors and deaths, Ctrl-C, the end of a run: no orphan processes, no leaked shared memory)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import numpyml_core as nm
from numpyml_core import hookimpl
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import prepare, train

from blobs import EXPERIMENT, SOURCE
from numpyml_parallel._pool import WorkerError
from numpyml_parallel._shared import segment_names
from numpyml_parallel.staleness import StalenessCompensation

EXPLODE = '''
import numpy as np
from numpyml_core import hookimpl


class Explode:
    """Identity, but the training forward pass number ``after + 1`` raises (in a worker)."""

    def __init__(self, after: int = 3):
        self.after = after
        self.calls = 0
        self.params, self.grads = {}, {}

    def build(self, input_shape, rng):
        return tuple(input_shape)

    def forward(self, x, training):
        if training:
            self.calls += 1
            if self.calls > self.after:
                raise ValueError(f"kaboom in forward call {self.calls}")
        return x

    def backward(self, dy):
        return dy


@hookimpl
def numpyml_register_components(register):
    register("layer", "fakeplug_explode", Explode)
'''


KEEPS_ARRAYS = '''
import numpy as np
from numpyml_core import hookimpl


class KeepsArrays:
    """``y = x * gamma``, computed with references to its arrays kept at build (what the layer
    protocol asks layers not to do): rebinding ``params`` does not reach it."""

    def build(self, input_shape, rng):
        self.gamma = rng.uniform(0.5, 1.5, size=input_shape).astype(np.float32)
        self.gamma_grad = np.zeros_like(self.gamma)
        self.params, self.grads = {"gamma": self.gamma}, {"gamma": self.gamma_grad}
        return tuple(input_shape)

    def forward(self, x, training):
        self.x = x
        return x * self.gamma

    def backward(self, dy):
        np.sum(dy * self.x, axis=0, out=self.gamma_grad)
        return dy * self.gamma


class KeepsGradArray(KeepsArrays):
    """Reads ``params`` at every call, but writes its gradient into the array it kept at build."""

    def forward(self, x, training):
        self.x = x
        return x * self.params["gamma"]

    def backward(self, dy):
        np.sum(dy * self.x, axis=0, out=self.gamma_grad)
        return dy * self.params["gamma"]


@hookimpl
def numpyml_register_components(register):
    register("layer", "fakeplug_keeps_arrays", KeepsArrays)
    register("layer", "fakeplug_keeps_grad_array", KeepsGradArray)
'''


@pytest.fixture
def site(make_dist):
    return make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs", "explode": "fakeplug_explode",
                                                 "keeps": "fakeplug_keeps"},
                     {"fakeplug_blobs": SOURCE, "fakeplug_explode": EXPLODE, "fakeplug_keeps": KEEPS_ARRAYS})


def blobs_experiment(strategy: dict | None = None, epochs: int = 2, **training) -> str:
    text = EXPERIMENT.replace("epochs = 3", f"epochs = {epochs}")
    for key, value in training.items():
        text += f"{key} = {value}\n"
    if strategy:
        text += "[training.strategy]\n" + "".join(
            f"{k} = {str(value).lower() if isinstance(value, bool) else repr(value)}\n".replace("'", '"')
            for k, value in strategy.items())
    return text


def run_blobs(tmp_path: Path, strategy: dict | None, epochs: int = 2, extra_callbacks=(), **training):
    stamp = time.monotonic_ns()
    path = tmp_path / f"blobs-{stamp}.toml"
    path.write_text(blobs_experiment(strategy, epochs, **training))
    result = nm.run(path, output=tmp_path / f"run-{stamp}", progress=False, callbacks=list(extra_callbacks))
    return result.run, result.summary


def leftovers(before: set[str]) -> list[str]:
    return sorted(set(segment_names()) - before)


@pytest.fixture
def clean():
    """Check that a test leaves no worker process and no shared-memory segment behind."""
    before = set(segment_names())
    yield
    assert multiprocessing.active_children() == []
    assert leftovers(before) == []


def assert_same_params(a, b, rtol=1e-4, atol=1e-6):
    pa, pb = a.model.params(), b.model.params()
    assert pa.keys() == pb.keys()
    for key in pa:
        np.testing.assert_allclose(pa[key], pb[key], rtol=rtol, atol=atol, err_msg=key)


# -- same updates as serial -----------------------------------------------------------------------
KEEPS_LAYER = '[[model.layers]]\ntype = "flatten"\n[[model.layers]]\ntype = "fakeplug_{}"\n'


@pytest.mark.parametrize("layers", ["dense", "keeps arrays", "keeps grad array"])
def test_worker_computing_on_shared_arrays_matches_a_copying_worker(site, tmp_path, clean, layers):
    """A worker bound to the shared segments (parameters read and gradients written in place)
    gives the gradients of one that copies parameters in and gradients out. A layer that keeps its
    own parameter arrays is noticed when binding (nothing is bound); one that writes its gradient
    into an array of its own is noticed by the first batch's NaN probe (gradients copied out)."""
    from numpyml_parallel._shared import SharedArrays, new_token
    from numpyml_parallel._worker import SharedMemoryWorker

    text = blobs_experiment()
    if layers != "dense":
        text = text.replace('[[model.layers]]\ntype = "flatten"\n', KEEPS_LAYER.format(layers.replace(" ", "_")), 1)
    path = tmp_path / "worker.toml"
    path.write_text(text)
    manager = get_plugin_manager()
    run = prepare(nm.Experiment.load(path, manager=manager).spec, manager)
    params = run.model.params()
    token = new_token()
    shared = SharedArrays.create(token, "p", {f"param.{k}": (v.shape, v.dtype) for k, v in params.items()})
    outputs = [SharedArrays.create(token, f"g{k}", {f"grad.{n}": (v.shape, v.dtype) for n, v in params.items()})
               for k in range(2)]
    try:
        bound, copying = (SharedMemoryWorker(run.spec, run.model.input_shape, [run.spec.seed, k]) for k in (1, 2))
        bound.bind(shared, outputs[0])
        assert bound.bound == (set() if layers == "keeps arrays" else set(params))
        assert bound.grads_bound == (layers != "keeps arrays")
        rng = np.random.default_rng(5)
        x, y = run.splits["train"].batch(np.arange(16))
        for step in range(3):
            for name, value in params.items():
                np.copyto(shared[f"param.{name}"], value + rng.normal(0, 0.1, value.shape).astype(np.float32))
            loss_copying = copying.compute(shared, x, y, outputs[1], scale=0.375)
            loss_bound = bound.compute(shared, x, y, outputs[0], scale=0.375)
            assert loss_bound == pytest.approx(loss_copying, rel=1e-6)
            for name in params:
                key = f"grad.{name}"
                assert np.all(np.isfinite(outputs[0][key])), (step, key)
                np.testing.assert_allclose(outputs[0][key], outputs[1][key], rtol=1e-5, atol=1e-7,
                                           err_msg=f"step {step}, {key}")
        last = len(bound.model.layers) - 1
        computes_in_place = bound.model.layers[last].params["weight"] is shared[f"param.{last}.weight"]
        assert bound.bound == (set() if layers == "keeps arrays" else set(params))
        assert computes_in_place == (layers != "keeps arrays")
        assert bound.grads_bound == (layers == "dense")
    finally:
        for segment in (shared, *outputs):
            segment.unlink()


class SeesSharedParameters:
    """Records, after every batch, whether run.model's parameters are the shared arrays."""

    def __init__(self):
        self.seen: list[bool] = []

    @hookimpl
    def numpyml_on_batch_end(self, run, epoch, batch, loss):
        shared = run.strategy._params[0]
        self.seen.append(all(value is shared[f"param.{name}"] for name, value in run.model.params().items()))


@pytest.mark.parametrize("layers", ["dense", "keeps arrays"])
def test_sync_steps_the_shared_parameters_and_gives_the_model_its_own_back(site, tmp_path, clean, layers):
    """The training process's model computes on (and the optimizer steps) the parameters the
    workers read; after the run the model has its own arrays again, with the trained values. A
    layer that keeps references to its arrays is noticed at setup: then parameters are copied."""
    text = blobs_experiment()
    if layers != "dense":
        text = text.replace('[[model.layers]]\ntype = "flatten"\n', KEEPS_LAYER.format("keeps_arrays"), 1)
    runs = {}
    for kind in ("serial", "sync"):
        path = tmp_path / f"{kind}.toml"
        path.write_text(text + ('[training.strategy]\ntype = "sync"\nworkers = 2\n' if kind == "sync" else ""))
        manager = get_plugin_manager()
        run = prepare(nm.Experiment.load(path, manager=manager).spec, manager)
        own = run.model.params()
        watcher = SeesSharedParameters()
        if kind == "sync":
            run.hook_manager.register(watcher)
        train(run)
        assert all(value is own[name] for name, value in run.model.params().items())
        runs[kind] = run
    assert watcher.seen and set(watcher.seen) == {layers == "dense"}
    assert_same_params(runs["serial"], runs["sync"])


@pytest.mark.parametrize("settings", [{"workers": 3}, {"workers": 3, "local_share": False}, {"workers": 1}])
def test_sync_follows_serial(site, tmp_path, clean, settings):
    serial, serial_summary = run_blobs(tmp_path, None)
    # 3 workers on batches of 16: shares 6, 5, 5 (and 3, 3, 2 for the last batch of 8); with
    # local_share the training process computes the first share, 2 worker processes the others
    sync, sync_summary = run_blobs(tmp_path, {"type": "sync", **settings})
    assert sync.strategy.pool is None
    assert_same_params(serial, sync)
    assert sync_summary["steps"] == serial_summary["steps"]
    assert sync_summary["train_loss"] == pytest.approx(serial_summary["train_loss"], rel=1e-5)
    assert sync_summary["test_accuracy"] == serial_summary["test_accuracy"]


@pytest.mark.parametrize("local_share", [True, False])
def test_async_with_one_worker_follows_serial(site, tmp_path, clean, local_share):
    """One worker: the training process itself (local_share: no process at all), or one worker
    process that it waits for."""
    serial, serial_summary = run_blobs(tmp_path, None)
    run, summary = run_blobs(tmp_path, {"type": "async", "workers": 1, "staleness": "dc", "local_share": local_share})
    assert_same_params(serial, run)
    assert run.strategy.staleness_counts == {1: serial_summary["steps"]}
    assert summary["train_loss"] == pytest.approx(serial_summary["train_loss"], rel=1e-5)


class Updates:
    """Counts updates; ``pause`` seconds of sleep at each gives the worker processes the cores on a
    loaded machine, so that their gradients arrive while the training process updates (without it,
    a busy machine can leave the workers unscheduled for the whole of this tiny run)."""

    def __init__(self, pause: float = 0.0):
        self.count = 0
        self.pause = pause

    @hookimpl
    def numpyml_before_update(self, params, grads):
        assert params.keys() == grads.keys()
        self.count += 1
        if self.pause:
            time.sleep(self.pause)


@pytest.mark.parametrize("staleness,local_share", [("divide", True), ("dc_adaptive", True), ("dc", False)])
def test_async_two_workers_learns_with_stale_gradients(site, tmp_path, clean, staleness, local_share):
    updates = Updates(pause=0.003)
    run, summary = run_blobs(tmp_path, {"type": "async", "workers": 2, "staleness": staleness,
                                        "local_share": local_share, "spin_ms": 0.5 if local_share else 0.0},
                             extra_callbacks=[updates])
    counts = run.strategy.staleness_counts
    assert sum(counts.values()) == updates.count == summary["steps"] == 2 * 63
    assert counts.get(2, 0) > 0  # the other worker's update came in between
    if local_share:  # the batches computed in the training process are applied at once
        assert counts.get(1, 0) > 0
    assert summary["test_accuracy"] > 0.9
    assert np.isfinite(summary["train_loss"])


# -- staleness rules ----------------------------------------------------------------------------
def test_divide_scales_the_learning_rate_by_the_staleness():
    rule = StalenessCompensation("divide")
    assert [rule.learning_rate_factor(t) for t in (1, 2, 4)] == [1.0, 0.5, 0.25]
    assert StalenessCompensation("none").learning_rate_factor(3) == 1.0
    assert StalenessCompensation("dc").learning_rate_factor(3) == 1.0



def test_the_rules_are_a_registered_component_for_other_plugins():
    """ray_async (another plugin) reaches the same rules through the registry: kind 'staleness'."""
    rule = nm.create("staleness", "compensation", rule="dc", dc_lambda=0.5)
    assert isinstance(rule, StalenessCompensation) and rule.rule == "dc" and rule.dc_lambda == 0.5

def test_delay_compensation_formula():
    rng = np.random.default_rng(0)
    g = rng.standard_normal(5).astype(np.float32)
    now, stale = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    grads = {"0.weight": g.copy()}
    StalenessCompensation("dc", dc_lambda=0.5).compensate(grads, {"0.weight": now}, {"0.weight": stale}, tau=2)
    np.testing.assert_allclose(grads["0.weight"], g + 0.5 * g * g * (now - stale), rtol=1e-6)

    fresh = {"0.weight": g.copy()}
    StalenessCompensation("dc", dc_lambda=0.5).compensate(fresh, {"0.weight": now}, {"0.weight": stale}, tau=1)
    np.testing.assert_array_equal(fresh["0.weight"], g)

    adaptive = StalenessCompensation("dc_adaptive", dc_lambda=2.0, dc_momentum=0.9)
    first = {"0.weight": g.copy()}
    adaptive.compensate(first, {"0.weight": now}, {"0.weight": stale}, tau=1)  # only the mean square moves
    second_g = rng.standard_normal(5).astype(np.float32)
    second = {"0.weight": second_g.copy()}
    adaptive.compensate(second, {"0.weight": now}, {"0.weight": stale}, tau=3)
    mean_square = 0.9 * (0.1 * g * g) + 0.1 * second_g * second_g
    expected = second_g + 2.0 / np.sqrt(mean_square + 1e-7) * second_g * second_g * (now - stale)
    np.testing.assert_allclose(second["0.weight"], expected, rtol=1e-5)


@pytest.mark.parametrize("params, message", [
    ({"type": "async", "staleness": "halve"}, "staleness"),
    ({"type": "sync", "workers": 0}, "workers"),
    ({"type": "async", "dc_lambda": -1.0}, "dc_lambda"),
    ({"type": "sync", "timeout": 0.0}, "timeout"),
])
def test_invalid_settings_are_config_errors(site, tmp_path, params, message):
    from numpyml_core import ConfigError

    path = tmp_path / "bad.toml"
    path.write_text(blobs_experiment(params))
    with pytest.raises(ConfigError, match=message):
        nm.Experiment.load(path).validate()


# -- robustness -----------------------------------------------------------------------------------
def explode_experiment(tmp_path: Path, strategy: dict) -> Path:
    text = blobs_experiment(strategy, epochs=50).replace(
        '[[model.layers]]\ntype = "flatten"', '[[model.layers]]\ntype = "fakeplug_explode"\nafter = 20\n'
                                              '[[model.layers]]\ntype = "flatten"')
    path = tmp_path / "explode.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("strategy", [{"type": "sync", "workers": 2, "local_share": False},
                                      {"type": "async", "workers": 2, "local_share": False}])
def test_worker_exception_fails_the_run_with_its_error(site, tmp_path, clean, strategy):
    manager = get_plugin_manager()
    run = prepare(nm.Experiment.load(explode_experiment(tmp_path, strategy), manager=manager).spec, manager)
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"(?s)parallel worker \d \(pid \d+\) failed:.*ValueError: kaboom in forward"):
        train(run)
    assert time.monotonic() - started < 20
    assert run.strategy.pool is None


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_share_in_the_training_process_fails_with_the_layer_error(site, tmp_path, clean, kind):
    """With local_share (the default) the training process computes too: a layer that raises
    there fails the run with its own error, and the worker process is still stopped."""
    manager = get_plugin_manager()
    path = explode_experiment(tmp_path, {"type": kind, "workers": 2})
    run = prepare(nm.Experiment.load(path, manager=manager).spec, manager)
    with pytest.raises((ValueError, WorkerError), match=r"kaboom in forward"):
        train(run)
    assert run.strategy.pool is None


class KillWorker:
    def __init__(self, at_step: int):
        self.at_step = at_step
        self.pid = None

    @hookimpl
    def numpyml_on_batch_end(self, run):
        if run.step == self.at_step:
            self.pid = run.strategy.pool.pids[-1]  # sync: worker 1 is the only process (the trainer is 0)
            os.kill(self.pid, signal.SIGKILL)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_killed_worker_fails_the_run_within_seconds(site, tmp_path, clean, kind):
    killer = KillWorker(at_step=5)
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"parallel worker 1 \(pid \d+\) died \(killed by signal SIGKILL\)"):
        run_blobs(tmp_path, {"type": kind, "workers": 2}, epochs=50, extra_callbacks=[killer])
    assert time.monotonic() - started < 20
    assert not Path(f"/proc/{killer.pid}").exists()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_ctrl_c_stops_workers_and_frees_shared_memory(site, tmp_path, kind):
    before = set(segment_names())
    path = tmp_path / "long.toml"
    path.write_text(blobs_experiment({"type": kind, "workers": 2}, epochs=1000))
    env = {**os.environ, "PYTHONPATH": str(site)}
    process = subprocess.Popen([sys.executable, "-m", "numpyml_core.cli", "run", str(path), "--output",
                                str(tmp_path / "run"), "--quiet"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        expected = 1  # the training process computes too (local_share): one worker process
        while time.monotonic() < deadline and len(workers) < expected:
            time.sleep(0.2)
            workers = [pid for pid in children_of(process.pid) if is_worker(pid)]
        assert len(workers) == expected, "the workers did not start"
        while time.monotonic() < deadline and not (tmp_path / "run" / "metrics.csv").exists():
            time.sleep(0.1)  # let it train an epoch
        assert leftovers(before), "no shared memory while training?"
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "numpyml resume" in err
    time.sleep(0.5)
    assert [pid for pid in workers if alive(pid)] == []
    assert leftovers(before) == []


def test_end_of_run_leaves_nothing(site, tmp_path, clean):
    run, _ = run_blobs(tmp_path, {"type": "async", "workers": 2}, epochs=1)
    assert run.strategy.pool is None and run.strategy._segments == []
    # the clean fixture checks: no child process, no shared-memory segment


# -- real data ------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_async_reaches_serial_accuracy_on_mnist(mnist_dir, clean, tmp_path):
    """The seed network (784-100 sigmoid-10, SGD lr 0.5, batch 32) for 3 epochs on MNIST."""
    def accuracy(strategy: dict) -> float:
        data = {
            "name": "async-vs-serial", "seed": 6942,
            "dataset": {"type": "mnist", "validation": 10000},
            "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 100, "activation": "sigmoid"},
                                 {"type": "dense", "units": 10, "activation": "softmax"}]},
            "cost": {"type": "cross_entropy"},
            "optimizer": {"type": "sgd", "learning_rate": 0.5},
            "training": {"epochs": 3, "batch_size": 32, "eval_splits": ["validation"], "strategy": strategy},
        }
        result = nm.run(nm.Experiment.from_dict(data, source="test"), output=tmp_path / strategy["type"],
                        data_dir=mnist_dir, progress=False)
        return result.summary["validation_accuracy"]

    serial = accuracy({"type": "serial"})
    asynchronous = accuracy({"type": "async", "workers": 2, "staleness": "dc"})
    assert serial > 0.95
    assert asynchronous >= serial - 0.005, f"async {asynchronous:.4f} vs serial {serial:.4f}"


def test_a_worker_killed_between_its_flag_and_its_signal_fails_the_wait():
    """The race behind a CI hang: a worker that set its DONE flag and was killed before releasing the
    completion semaphore. A spinning wait sees the flag; it must still notice the dead worker."""
    import re
    import threading
    import types

    from numpyml_parallel._pool import WorkerPool
    from numpyml_parallel._worker import DONE

    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    process.start()
    parent, child = multiprocessing.Pipe()
    os.kill(process.pid, signal.SIGKILL)
    process.join(5)
    pool = types.SimpleNamespace(spin=0.05, poll_interval=0.05, timeout=30.0, first_index=1,
                                 _done=threading.Semaphore(0), _processes=[process], _connections=[parent],
                                 control={"flag": np.array([DONE], dtype=np.int64)},
                                 _name=lambda index: f"parallel worker {index + 1}", _pid=lambda index: process.pid)
    pool._spin_until_done = WorkerPool._spin_until_done.__get__(pool)
    pool._raise_for = WorkerPool._raise_for.__get__(pool)
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            WorkerPool.receive_any(pool, [0])
        except BaseException as error:  # noqa: BLE001 - inspected below
            raised.append(error)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(15)
    child.close()
    assert not waiter.is_alive(), "receive_any still waits for a worker that died after setting its flag"
    assert len(raised) == 1 and isinstance(raised[0], WorkerError)
    assert re.search(r"parallel worker 1 \(pid \d+\) died \(killed by signal SIGKILL\)", str(raised[0]))
