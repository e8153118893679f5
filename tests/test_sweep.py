"""``numpyml sweep`` (plugins/numpyml_sweep): syntax, the sweep folder, resuming, Ctrl-C, Ray; ``numpyml experiments``.

Every sweep trains on a tiny MNIST in the real IDX format (written by the test) for an epoch or two of
a small network; trials run in processes of their own, as for a user.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core import hookimpl
from numpyml_core.cli import app

from conftest import require_extra
from idx_files import write_dataset

ROOT = Path(__file__).resolve().parent.parent

EXPERIMENT = """\
# A tiny MNIST network for sweep tests.
name = "tiny"
seed = 1

[dataset]
type = "mnist"
validation = 40

[[model.layers]]
type = "flatten"

[[model.layers]]
type = "dense"
units = 8
activation = "relu"

[[model.layers]]
type = "dense"
units = 10
activation = "softmax"

[cost]
type = "cross_entropy"

[optimizer]
type = "sgd"
learning_rate = 0.1

[training]
epochs = 2
batch_size = 16
"""

GRID = ["--grid", "optimizer.learning_rate=0.1,0.5", "--grid", "training.batch_size=16,32"]
NAMES = ["000-learning_rate=0.1-batch_size=16", "001-learning_rate=0.1-batch_size=32",
         "002-learning_rate=0.5-batch_size=16", "003-learning_rate=0.5-batch_size=32"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_dataset(folder / "mnist", n_train=160, n_test=40)
    return folder


@pytest.fixture
def experiment(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(EXPERIMENT)
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


def sweep(experiment: Path, out: Path, data: Path, *args: str):
    return invoke("sweep", experiment, *args, "--output", out, "--data-dir", data, "--jobs", "2")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# -- syntax ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,words", [
    (["--grid", "optimizer.learning_rate"], ["--grid optimizer.learning_rate", "KEY=VALUE"]),
    (["--grid", "optimizer.learning_rate=0.1,,0.5"], ["optimizer.learning_rate", "empty value"]),
    (["--grid", "optimizer.learning_rat=0.1,0.5"], ["optimizer.learning_rat", "did you mean 'learning_rate'"]),
    (["--grid", "training.batch_size=16,-3"], ["trial 1", "training.batch_size"]),
    (["--grid", "optimizer.learning_rate=loguniform(1e-3,1)"], ["optimizer.learning_rate", "--random"]),
    (["--random", "optimizer.learning_rate=loguniform(0,1)", "--samples", "2"], ["optimizer.learning_rate", "0 < LOW"]),
    (["--random", "optimizer.learning_rate=logunif(1e-3,1)", "--samples", "2"],
     ["optimizer.learning_rate", "did you mean 'loguniform'"]),
    (["--random", "optimizer.learning_rate=uniform(1)", "--samples", "2"], ["optimizer.learning_rate", "two numbers"]),
    (["--random", "training.batch_size=randint(8,2.5)", "--samples", "2"], ["training.batch_size", "two integers"]),
    (["--random", "training.batch_size=choice()", "--samples", "2"], ["training.batch_size", "at least one value"]),
    (["--random", "optimizer.learning_rate=uniform(0.1,1)"], ["optimizer.learning_rate", "--samples N"]),
    (["--grid", "seed=1,2", "--set", "seed=3"], ["seed", "given twice"]),
    ([], ["nothing to sweep"]),
])
def test_bad_grid_or_distribution_exits_2_naming_the_key_before_anything_runs(experiment, tmp_path, data, args, words):
    out = tmp_path / "sweep"
    result = sweep(experiment, out, data, *args)
    assert result.exit_code == 2, result.output
    assert all(word in result.stderr for word in words), result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one paragraph
    assert not out.exists()


def test_trials_of_a_random_search_are_reproducible_from_the_seed():
    from numpyml_sweep.space import parse_space, trials

    def make(seed: int):
        space = parse_space(["training.batch_size=16,32"], ["optimizer.learning_rate=loguniform(1e-3,1)",
                                                            "model.layers.1.units=randint(4,8)",
                                                            "model.layers.1.activation=choice(relu, \"tanh\")"],
                            [], 3, seed)
        return trials(space)

    first = make(7)
    assert [t.values for t in first] == [t.values for t in make(7)] != [t.values for t in make(8)]
    assert len(first) == 6 and [t.values["training.batch_size"] for t in first] == [16] * 3 + [32] * 3
    for t in first:
        assert 1e-3 <= t.values["optimizer.learning_rate"] <= 1 and 4 <= t.values["model.layers.1.units"] <= 8
        assert t.values["model.layers.1.activation"] in ("relu", "tanh")
        assert t.name.startswith(f"{t.number:03d}-batch_size=")


# -- the sweep folder --------------------------------------------------------------------------------
def test_a_grid_sweep_writes_one_run_folder_per_trial_and_sweep_csv_then_retrains_nothing(experiment, tmp_path, data):
    out = tmp_path / "sweep"
    result = sweep(experiment, out, data, *GRID)
    assert result.exit_code == 0, result.output + result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES + ["sweep.csv", "sweep.json"])
    for name in NAMES:
        assert nm.RunFolder(out / name).summary_path.is_file()
    config = nm.RunFolder(out / NAMES[2]).read_config()
    assert config["optimizer"]["learning_rate"] == 0.5 and config["training"]["batch_size"] == 16
    with open(out / "sweep.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["trial", "optimizer.learning_rate", "training.batch_size", "status", "validation_accuracy",
                      "test_accuracy", "seconds"]
    rows = read_csv(out / "sweep.csv")
    assert [(r["trial"], r["optimizer.learning_rate"], r["training.batch_size"], r["status"]) for r in rows] == [
        ("0", "0.1", "16", "finished"), ("1", "0.1", "32", "finished"), ("2", "0.5", "16", "finished"),
        ("3", "0.5", "32", "finished")]
    for row in rows:
        summary = nm.RunFolder(out / NAMES[int(row["trial"])]).read_summary()
        assert float(row["validation_accuracy"]) == summary["validation_accuracy"]
        assert float(row["test_accuracy"]) == summary["test_accuracy"]
        assert float(row["seconds"]) == summary["seconds"]
    assert "best: trial" in result.output and "VAL ACC" in result.output

    stamps = {name: (out / name / "model.safetensors").stat().st_mtime_ns for name in NAMES}
    again = sweep(experiment, out, data, *GRID)
    assert again.exit_code == 0, again.output + again.stderr
    assert "4 finished" in again.output and "0 to start" in again.output
    assert {name: (out / name / "model.safetensors").stat().st_mtime_ns for name in NAMES} == stamps
    assert read_csv(out / "sweep.csv") == rows


def test_report_of_a_sweep_folder_compares_its_trials_with_the_swept_values(experiment, tmp_path, data):
    require_extra("matplotlib")
    out = tmp_path / "sweep"
    result = sweep(experiment, out, data, "--grid", "optimizer.learning_rate=0.02,0.5", "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output + result.stderr
    rows = read_csv(out / "sweep.csv")
    best = max(rows, key=lambda row: float(row["validation_accuracy"]))
    report = invoke("report", out, "--data-dir", data)
    assert report.exit_code == 0, report.output + report.stderr
    assert "report of 2 runs" in report.output
    page = (out / "report.html").read_text()
    sweep_section = page[page.index('<section id="sweep">'):page.index('<section id="curves">')]
    assert "<th>optimizer.learning_rate</th>" in sweep_section and "2 trials" in sweep_section
    assert f"best trial (validation accuracy): {best['trial']}, optimizer.learning_rate = " \
           f"{best['optimizer.learning_rate']}" in sweep_section
    trials = sweep_section.split("<tr")[2:]  # after the header row: best first, in bold
    assert trials[0].startswith(' class="best">') and f"<td>{best['trial']}</td>" in trials[0]
    assert len(trials) == 2 and not trials[1].startswith(' class="best"')
    for name in ("000-learning_rate=0.02", "001-learning_rate=0.5"):  # in the summary, the configs, the test split
        assert page.count(name) >= 3, name

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "sweep.csv").write_text((out / "sweep.csv").read_text())
    refused = invoke("report", empty)
    assert refused.exit_code == 2 and "no trial of this sweep has results yet" in refused.stderr


def test_a_folder_of_another_sweep_is_refused(experiment, tmp_path, data):
    out = tmp_path / "sweep"
    assert sweep(experiment, out, data, "--grid", "training.batch_size=16,32").exit_code == 0
    other = sweep(experiment, out, data, "--grid", "training.batch_size=16,64")
    assert other.exit_code == 2
    assert "holds another sweep" in other.stderr and "--grid=training.batch_size=16,32" in other.stderr
    experiment.write_text(EXPERIMENT.replace("units = 8", "units = 9"))
    changed = sweep(experiment, out, data, "--grid", "training.batch_size=16,32")
    assert changed.exit_code == 2 and "experiment file's contents" in changed.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert "not a sweep folder" in sweep(experiment, tmp_path / "busy", data, "--grid", "seed=1,2").stderr


class StopAfterFirstEpoch:
    @hookimpl
    def numpyml_on_epoch_end(self, run, epoch, metrics):
        if epoch == 1:
            run.control.interrupt_requested = True


def test_an_interrupted_trial_resumes_from_its_checkpoint(experiment, tmp_path, data):
    out = tmp_path / "sweep"
    args = ["--grid", "training.batch_size=16,32", "--set", "training.epochs=3"]
    assert sweep(experiment, out, data, *args).exit_code == 0
    # trial 1 stopped after its first epoch, as a Ctrl-C or a killed process leaves it
    target = out / "001-batch_size=32"
    for path in sorted(target.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    target.rmdir()
    exp = nm.Experiment.load(experiment, overrides={"training.batch_size": 32, "training.epochs": 3})
    with pytest.raises(nm.TrainingInterrupted):
        nm.run(exp, output=target, data_dir=data, progress=False, callbacks=[StopAfterFirstEpoch()])
    first_epoch = (target / "metrics.csv").read_text().splitlines()[:2]
    finished = (out / "000-batch_size=16" / "model.safetensors").stat().st_mtime_ns

    result = sweep(experiment, out, data, *args)
    assert result.exit_code == 0, result.output + result.stderr
    assert "1 finished, 1 to resume, 0 to start" in result.output
    lines = (target / "metrics.csv").read_text().splitlines()
    assert lines[:2] == first_epoch and len(lines) == 4  # epoch 1 kept, epochs 2 and 3 added
    assert (out / "000-batch_size=16" / "model.safetensors").stat().st_mtime_ns == finished
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["finished", "finished"]


def test_ctrl_c_stops_every_trial_with_a_checkpoint_exit_130_and_the_same_command_finishes(tmp_path, data):
    # slow enough to be caught mid-training: 1,000 images, batch 4, 40 epochs
    slow_data = tmp_path / "data"
    write_dataset(slow_data / "mnist", n_train=1000, n_test=20)
    experiment = tmp_path / "slow.toml"
    experiment.write_text(EXPERIMENT.replace("epochs = 2", "epochs = 40").replace("batch_size = 16", "batch_size = 4"))
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "numpyml_core.cli", "sweep", str(experiment), "--grid", "seed=1,2",
               "--output", str(out), "--data-dir", str(slow_data), "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    checkpoints = [out / f"00{i}-seed={i + 1}" / "checkpoints" / "last.safetensors" for i in range(2)]
    while not all(c.exists() for c in checkpoints) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "interrupted" in stdout and "Traceback" not in stderr
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["interrupted", "interrupted"]
    epochs_done = [len((c.parent.parent / "metrics.csv").read_text().splitlines()) - 1 for c in checkpoints]
    assert all(1 <= n < 40 for n in epochs_done)

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 finished, 2 to resume" in result.stdout
    for c in checkpoints:
        assert len((c.parent.parent / "metrics.csv").read_text().splitlines()) == 41
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["finished", "finished"]


# -- early stopping (--scheduler asha) ------------------------------------------------------------------
BLOBS_EXPERIMENT = """\
name = "blobs"
seed = 3

[dataset]
type = "csv"
path = "{path}"
label_column = "label"
normalize = true
validation = 300

[[model.layers]]
type = "dense"
units = 16
activation = "relu"

[[model.layers]]
type = "dense"
units = 4
activation = "softmax"

[cost]
type = "cross_entropy"

[optimizer]
type = "sgd"
learning_rate = 0.1

[training]
epochs = 9
batch_size = 1              # slow enough epochs (~0.1 s) that a stop lands before the trial ends
"""
# trial 0 learns the blobs at once; 1 and 2 barely move in 9 epochs; 3 learns
ASHA_GRID = ["--grid", "optimizer.learning_rate=0.3,0.00001,0.00002,0.2"]


@pytest.fixture
def blobs(tmp_path) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, size=(4, 8))
    labels = rng.integers(0, 4, size=1200)
    features = centres[labels] + rng.normal(0, 1, size=(1200, 8))
    rows = [",".join([*(f"{v:.4f}" for v in x), str(y)]) for x, y in zip(features, labels)]
    (tmp_path / "blobs.csv").write_text(",".join([*(f"f{i}" for i in range(8)), "label"]) + "\n" + "\n".join(rows))
    path = tmp_path / "blobs.toml"
    path.write_text(BLOBS_EXPERIMENT.format(path=tmp_path / "blobs.csv"))
    return path


def asha_oracle(out: Path) -> dict[int, int | None]:
    """For trials run one after another (--jobs 1): the epoch at which ASHA (grace 1, factor 3, 9 epochs: rungs
    at 1 and 3) stops each, recomputed from their metrics.csv: below the 2/3 percentile of earlier trials there."""
    import numpy as np

    stopped: dict[int, int | None] = {}
    recorded: dict[int, list[float]] = {1: [], 3: []}
    for number, folder in enumerate(sorted(out.glob("0*"))):
        values = [float(row["validation_accuracy"]) for row in read_csv(folder / "metrics.csv")]
        stopped[number] = None
        for rung in (1, 3):
            if len(values) < rung:
                break
            cutoff = np.nanpercentile(recorded[rung], 100 * (1 - 1 / 3)) if recorded[rung] else None
            recorded[rung].append(values[rung - 1])
            if cutoff is not None and values[rung - 1] < cutoff:
                stopped[number] = rung
                break
    return stopped


def test_asha_stops_poor_trials_early_keeps_them_stopped_and_without_it_the_same_command_finishes_them(blobs,
                                                                                                       tmp_path):
    require_extra("ray.tune", "tune")
    out = tmp_path / "sweep"
    command = ["sweep", blobs, *ASHA_GRID, "--output", out, "--jobs", "1", "--scheduler", "asha"]
    result = invoke(*command)
    assert result.exit_code == 0, result.output + result.stderr
    rows = read_csv(out / "sweep.csv")
    oracle = asha_oracle(out)
    assert [row["status"] for row in rows] == ["finished" if oracle[n] is None else "stopped" for n in range(4)]
    assert [row["status"] for row in rows][:3] == ["finished", "stopped", "stopped"], rows  # not vacuous
    for row, folder in zip(rows, sorted(out.glob("0*"))):
        epochs = len(read_csv(folder / "metrics.csv"))
        stop = oracle[int(row["trial"])]
        assert epochs == 9 if stop is None else stop <= epochs < 9, (row, epochs)  # stopped soon after its rung
        if stop is not None:
            assert nm.RunFolder(folder).checkpoint_path("last").is_file() and row["test_accuracy"] == ""
            assert float(row["validation_accuracy"]) == float(read_csv(folder / "metrics.csv")[-1]
                                                               ["validation_accuracy"])
    assert "stopped early after epoch 1 (ASHA)" in result.output

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("0*/metrics.csv")}
    again = invoke(*command)  # stopped trials stay stopped: nothing trains
    assert again.exit_code == 0 and "0 to start" in again.output, again.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("0*/metrics.csv")} == stamps
    assert read_csv(out / "sweep.csv") == rows

    full = invoke(*command[:-2])  # without early stopping the stopped trials resume to the end
    assert full.exit_code == 0, full.output + full.stderr
    assert [row["status"] for row in read_csv(out / "sweep.csv")] == ["finished"] * 4
    for folder in out.glob("0*"):
        assert [int(row["epoch"]) for row in read_csv(folder / "metrics.csv")] == list(range(1, 10))


@pytest.mark.parametrize("args,words", [
    (["--scheduler", "ashaa"], ["--scheduler ashaa", "did you mean 'asha'"]),
    (["--scheduler", "asha", "--grace-period", "10"], ["--grace-period 10", "9 epochs"]),
    (["--scheduler", "asha", "--reduction-factor", "1"], ["--reduction-factor 1.0", "greater than 1"]),
    (["--scheduler", "asha", "--set", "dataset.validation=0"], ["no validation split", "dataset.validation"]),
])
def test_bad_early_stopping_options_exit_2_before_anything_runs(blobs, tmp_path, args, words):
    if "--scheduler" in args and args[1] == "asha":
        require_extra("ray.tune", "tune")
    out = tmp_path / "sweep"
    result = invoke("sweep", blobs, *ASHA_GRID, "--output", out, *args)
    assert result.exit_code == 2, result.output + result.stderr
    assert all(word in result.stderr for word in words), result.stderr
    assert not out.exists()


# -- Ray ---------------------------------------------------------------------------------------------
CLUSTER_SCRIPT = """
import subprocess, sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
try:
    result = subprocess.run([sys.executable, "-m", "numpyml_core.cli", "sweep", *sys.argv[1:], "--ray",
                             cluster.address], capture_output=True, text=True, timeout=400)
finally:
    cluster.shutdown()
sys.stdout.write(result.stdout)
sys.stderr.write(result.stderr)
sys.exit(result.returncode)
"""


@pytest.mark.ray
def test_a_sweep_on_a_two_node_ray_cluster_writes_the_same_folder(experiment, tmp_path, data):
    require_extra("ray", "ray")
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER_SCRIPT)
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    result = subprocess.run([sys.executable, str(script), str(experiment), *GRID, "--set", "training.epochs=1",
                             "--output", str(out), "--data-dir", str(data)],
                            capture_output=True, text=True, timeout=500, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES + ["sweep.csv", "sweep.json"])
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["finished"] * 4
    nodes = {line.split("[node ")[1].split("]")[0] for line in result.stdout.splitlines() if "[node " in line}
    assert len(nodes) == 2, result.stdout  # trials ran on both nodes


NODE_DEATH_SCRIPT = """
import glob, json, os, subprocess, sys, time
from ray.cluster_utils import Cluster

out = sys.argv[1]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
try:
    sweep = subprocess.Popen([sys.executable, "-m", "numpyml_core.cli", "sweep", *sys.argv[1:], "--ray",
                              cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(glob.glob(sys.argv[sys.argv.index("--output") + 1] + "/*/checkpoints/last.safetensors")) < 2:
        if time.monotonic() > deadline or sweep.poll() is not None:
            sys.exit("the two trials did not both write a checkpoint")
        time.sleep(0.1)
    cluster.remove_node(worker)  # the node dies with one trial running on it (one CPU per node)
    folders = glob.glob(sys.argv[sys.argv.index("--output") + 1] + "/0*")
    at_death = {os.path.basename(f): [os.path.exists(f + "/summary.json"),
                                      len(open(f + "/metrics.csv").readlines()) - 1] for f in folders}
    stdout, stderr = sweep.communicate(timeout=400)
    stderr += "AT DEATH " + json.dumps(at_death)
finally:
    cluster.shutdown()
sys.stdout.write(stdout)
sys.stderr.write(stderr)
sys.exit(sweep.returncode)
"""


@pytest.mark.ray
def test_a_trial_whose_ray_node_dies_is_run_again_elsewhere_and_resumes_from_its_checkpoint(experiment, tmp_path,
                                                                                              data):
    require_extra("ray", "ray")
    script = tmp_path / "node_death.py"
    script.write_text(NODE_DEATH_SCRIPT)
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    result = subprocess.run([sys.executable, str(script), str(experiment), "--grid", "optimizer.learning_rate=0.1,0.5",
                             "--set", "training.epochs=100", "--set", "training.batch_size=1", "--output", str(out),
                             "--data-dir", str(data)], capture_output=True, text=True, timeout=800, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["finished"] * 2
    # both trials ran at once, one per node; after the worker node died, both ended on the head node
    nodes = {line.split("[node ")[1].split("]")[0] for line in result.stdout.splitlines() if "[node " in line}
    assert len(nodes) == 1, result.stdout
    at_death = json.loads(result.stderr.split("AT DEATH ")[-1])  # {trial folder: [finished, epochs done]}
    assert all(not finished and 1 <= epochs < 100 for finished, epochs in at_death.values()), at_death
    for folder in out.glob("0*"):  # each epoch trained once: the retried trial resumed, it did not start over
        rows = read_csv(folder / "metrics.csv")
        assert [int(row["epoch"]) for row in rows] == list(range(1, 101)), folder


# -- bundled experiments -------------------------------------------------------------------------------
def test_a_bare_name_loads_the_bundled_experiment_unless_a_file_of_that_name_is_here(tmp_path, monkeypatch):
    bundled = nm.bundled_experiments()
    assert bundled["mnist"] == ROOT / "experiments" / "mnist.toml"  # an editable install: the repository's
    assert set(bundled) == {p.stem for p in (ROOT / "experiments").glob("*.toml")}
    monkeypatch.chdir(tmp_path)
    assert nm.Experiment.load("mnist").source == str(bundled["mnist"])
    assert nm.Experiment.load("mnist.toml").name == "mnist-basic"
    (tmp_path / "mnist").write_text(EXPERIMENT)
    assert nm.Experiment.load("mnist").name == "tiny"
    with pytest.raises(nm.ConfigError):
        nm.Experiment.load("no-such-experiment")


def test_experiments_lists_each_with_its_description_and_measured_figure():
    result = invoke("experiments", "--json")
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert set(entries) == set(nm.bundled_experiments())
    assert entries["mnist"]["description"].startswith("The seed project's basic network: 784 -> 100 sigmoid")
    assert entries["mnist"]["measured"] == "test 97.7 %"
    assert entries["cifar100"]["measured"] == "not measured"
    assert "issue" not in entries["mnist_cnn"]["description"]
    table = invoke("experiments")
    assert "mnist_cnn" in table.output and "99.53 %" in table.output


WHEEL_SCRIPT = """
set -e
uv build --wheel --out-dir "$WORK/dist" "$ROOT" >/dev/null 2>&1
uv venv -q "$WORK/venv"
uv pip install -q --python "$WORK/venv" "$WORK"/dist/*.whl
cd "$WORK/elsewhere"
"$WORK/venv/bin/numpyml" experiments --json > experiments.json
"$WORK/venv/bin/numpyml" run mnist --set training.epochs=1 --set dataset.validation=50 --data-dir "$WORK/data" \
    --output "$WORK/run" --quiet
"""


@pytest.mark.slow
def test_a_wheel_in_a_clean_venv_runs_a_bundled_experiment_by_name(tmp_path):
    import shutil
    import zipfile

    if shutil.which("uv") is None:
        pytest.skip("uv is not installed (pip install uv)")
    write_dataset(tmp_path / "data" / "mnist", n_train=150, n_test=30)
    (tmp_path / "elsewhere").mkdir()  # no experiments/ here
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT", "PYTHONPATH"))}
    result = subprocess.run(["bash", "-c", textwrap.dedent(WHEEL_SCRIPT)], capture_output=True, text=True,
                            timeout=300, env={**env, "WORK": str(tmp_path), "ROOT": str(ROOT)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    shipped = [n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("numpyml_core/experiments/")]
    assert sorted(Path(n).name for n in shipped) == sorted(p.name for p in (ROOT / "experiments").glob("*.toml"))
    assert all(n.endswith(".toml") for n in shipped)
    listed = json.loads((tmp_path / "elsewhere" / "experiments.json").read_text())
    assert "mnist" in {e["name"] for e in listed} and all("site-packages" in e["path"] for e in listed)
    run = nm.RunFolder(tmp_path / "run")
    assert run.read_summary()["epochs"] == 1
    assert "site-packages/numpyml_core/experiments/mnist.toml" in run.config_path.read_text().splitlines()[0]
