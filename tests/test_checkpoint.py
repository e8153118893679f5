"""Checkpoints and exact resume: a run killed at any moment and resumed ends bitwise equal."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from numpyml_core.checkpoint import read_checkpoint
import numpyml_core as nm
from numpyml_core.cli import app
from numpyml_core.serialization import load_tensors

from blobs import EXPERIMENT, SOURCE
from conftest import InterruptAt

# A callback in the fake distribution that kills its own process with SIGKILL while a checkpoint is
# being assembled (the Nth time, N from the environment), after leaving a partial temporary file
# where an interrupted atomic write would leave one.
KILLER = '''
import os, signal
from pathlib import Path
from numpyml_core import hookimpl

class KillDuringCheckpoint:
    def __init__(self):
        self.calls = 0

    @hookimpl
    def numpyml_on_checkpoint_save(self, run, state):
        self.calls += 1
        if str(self.calls) == os.environ.get("KILL_AT_CHECKPOINT"):
            folder = Path(run.output_dir) / "checkpoints"
            folder.mkdir(exist_ok=True)
            (folder / ".last.safetensors.partial.tmp").write_bytes(b"\\x00" * 100)
            os.kill(os.getpid(), signal.SIGKILL)

@hookimpl
def numpyml_register_components(register):
    register("callback", "fakeplug_killer", KillDuringCheckpoint)
'''

SLOW = EXPERIMENT.replace('type = "fakeplug_blobs"', 'type = "fakeplug_blobs"\nsamples = 12000').replace(
    "epochs = 3", "epochs = 4").replace("units = 32", "units = 256")
SLOW += '''
[[callbacks]]
type = "checkpoint"
every_batches = 40

[[callbacks]]
type = "fakeplug_killer"
'''


@pytest.fixture
def site(make_dist, tmp_path):
    root = make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs", "killer": "fakeplug_killer"},
                     {"fakeplug_blobs": SOURCE, "fakeplug_killer": KILLER})
    return root


def cli(site: Path, *args: str, env: dict | None = None, wait: bool = True):
    environment = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "numpyml_core.cli", *args], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = process.communicate(timeout=300)
        return process.returncode, out, err
    return process


def metrics_without_time(run_dir: Path) -> list[list[str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    column = rows[0].index("seconds")
    return [row[:column] + row[column + 1:] for row in rows]


def assert_same_run(a: Path, b: Path) -> None:
    ta, tb = load_tensors(a / "model.safetensors"), load_tensors(b / "model.safetensors")
    assert sorted(ta) == sorted(tb)
    for key in ta:
        assert np.array_equal(ta[key], tb[key]), f"{key} differs"
    assert metrics_without_time(a) == metrics_without_time(b)


@pytest.fixture
def reference(site, tmp_path):
    experiment = tmp_path / "slow.toml"
    experiment.write_text(SLOW)
    code, out, err = cli(site, "run", str(experiment), "--output", str(tmp_path / "reference"), "--quiet")
    assert code == 0, err
    return experiment, tmp_path / "reference"


def wait_for_checkpoint(run_dir: Path, process, newer_than: float = 0.0, timeout: float = 60.0) -> bool:
    """Wait until the run has written a checkpoint newer than ``newer_than``; False if it ended."""
    last = run_dir / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if last.exists() and last.stat().st_mtime > newer_than:
            return True
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_at_several_moments_then_resume_is_bitwise_equal(site, reference, tmp_path):
    experiment, ref = reference
    run_dir = tmp_path / "killed"
    process = cli(site, "run", str(experiment), "--output", str(run_dir), "--quiet", wait=False)
    kills = 0
    seen = 0.0
    for extra in (0.0, 0.13, 0.31, 0.05, 0.22):  # after a checkpoint, at varying moments of training
        if not wait_for_checkpoint(run_dir, process, newer_than=seen):
            break
        seen = (run_dir / "checkpoints" / "last.safetensors").stat().st_mtime
        time.sleep(extra)
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        process = cli(site, "resume", str(run_dir), "--quiet", wait=False)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert kills >= 3
    assert_same_run(ref, run_dir)


@pytest.mark.parametrize("kill_at", ["3", "9"])
def test_kill_while_writing_a_checkpoint(site, reference, tmp_path, kill_at):
    experiment, ref = reference
    run_dir = tmp_path / "mid-write"
    code, _, _ = cli(site, "run", str(experiment), "--output", str(run_dir), "--quiet",
                     env={"KILL_AT_CHECKPOINT": kill_at})
    assert code == -signal.SIGKILL
    assert (run_dir / "checkpoints" / ".last.safetensors.partial.tmp").exists()
    code, _, err = cli(site, "resume", str(run_dir), "--quiet")
    assert code == 0, err
    assert_same_run(ref, run_dir)


def test_ctrl_c_writes_a_checkpoint_and_exits_130(site, reference, tmp_path):
    experiment, ref = reference
    run_dir = tmp_path / "interrupted"
    process = cli(site, "run", str(experiment), "--output", str(run_dir), "--quiet", wait=False)
    assert wait_for_checkpoint(run_dir, process)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert f"numpyml resume {run_dir}" in err
    assert "Traceback" not in err
    _, state = read_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    assert state["step"] > 0
    code, _, err = cli(site, "resume", str(run_dir), "--quiet")
    assert code == 0, err
    assert_same_run(ref, run_dir)


@pytest.fixture
def blobs(make_dist, tmp_path):
    make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs"}, {"fakeplug_blobs": SOURCE})
    path = tmp_path / "blobs.toml"
    path.write_text(EXPERIMENT + '\n[[callbacks]]\ntype = "early_stopping"\nmonitor = "validation_loss"\npatience = 1\n')
    return path


@pytest.mark.parametrize("step", [1, 62, 63, 100, 189])
def test_in_process_interrupt_and_resume_with_early_stopping_state(blobs, tmp_path, step):
    ref = nm.run(blobs, output=tmp_path / "ref", progress=False).run_dir
    with pytest.raises(nm.TrainingInterrupted) as stopped:
        nm.run(blobs, output=tmp_path / "cut", callbacks=[InterruptAt(step)], progress=False)
    assert stopped.value.run_dir == tmp_path / "cut"
    nm.run(blobs, output=tmp_path / "cut", resume=True, progress=False)
    assert_same_run(ref, tmp_path / "cut")


def test_resume_refuses_a_changed_experiment(blobs, tmp_path):
    with pytest.raises(nm.TrainingInterrupted):
        nm.run(blobs, output=tmp_path / "run", callbacks=[InterruptAt(70)], progress=False)
    changed = tmp_path / "changed.toml"
    changed.write_text(blobs.read_text().replace("learning_rate = 0.1", "learning_rate = 0.2"))
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(changed), "--output", str(tmp_path / "run"), "--resume", "--quiet"])
    assert result.exit_code == 2
    assert "optimizer.learning_rate" in result.stderr and "--allow-changes" in result.stderr
    result = runner.invoke(app, ["run", str(changed), "--output", str(tmp_path / "run"), "--resume", "--quiet",
                                 "--allow-changes"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] >= 2


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["resume", str(tmp_path)])
    assert result.exit_code == 2 and "not a run folder" in result.stderr


def test_truncated_checkpoint_is_refused_clearly(blobs, tmp_path):
    nm.run(blobs, output=tmp_path / "run", progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(app, ["resume", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert "last.safetensors" in result.stderr and "Traceback" not in result.output


def test_checkpoint_from_another_architecture_is_refused(blobs, tmp_path):
    nm.run(blobs, output=tmp_path / "a", progress=False)
    wider = tmp_path / "wider.toml"
    wider.write_text(blobs.read_text().replace("units = 32", "units = 48"))
    nm.run(wider, output=tmp_path / "b", progress=False)
    (tmp_path / "b" / "checkpoints" / "last.safetensors").write_bytes(
        (tmp_path / "a" / "checkpoints" / "last.safetensors").read_bytes())
    result = CliRunner().invoke(app, ["resume", str(tmp_path / "b"), "--quiet", "--allow-changes"])
    assert result.exit_code == 2
    assert "does not fit" in result.stderr


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EVIL_MARKER']}",))


def test_a_pickle_posing_as_a_model_or_checkpoint_never_runs(blobs, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps(_Evil()))
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(evil), "--dataset", "fakeplug_blobs"])
    assert result.exit_code == 2 and "not a safetensors model file" in result.stderr
    nm.run(blobs, output=tmp_path / "run", progress=False)
    (tmp_path / "run" / "checkpoints" / "last.safetensors").write_bytes(pickle.dumps(_Evil()))
    result = runner.invoke(app, ["resume", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_keeps_the_last_good_checkpoint(blobs, tmp_path):
    text = (blobs.read_text().replace("learning_rate = 0.1", "learning_rate = 2.0e2")
            .replace('activation = "softmax"', 'activation = "identity"').replace('"cross_entropy"', '"quadratic"')
            + '\n[[callbacks]]\ntype = "checkpoint"\nevery_batches = 2\n')
    blobs.write_text(text)
    result = CliRunner().invoke(app, ["run", str(blobs), "--output", str(tmp_path / "d"), "--quiet"])
    assert result.exit_code == 2
    assert "diverged" in result.stderr and "learning rate" in result.stderr
    tensors, state = read_checkpoint(tmp_path / "d" / "checkpoints" / "last.safetensors")
    assert state["step"] >= 2
    assert all(np.all(np.isfinite(v)) for v in tensors.values())
    assert not (tmp_path / "d" / "model.safetensors").exists()
