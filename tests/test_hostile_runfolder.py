"""The run folder under hostile conditions (issue 15): concurrent runs, resumes that would destroy results,
config.toml values TOML forbids, callback file names and experiment names that leave the folder, a full disk,
the umask. Every case: exit status 2 and one clear paragraph, or a correct run; nothing lost."""

from __future__ import annotations

import datetime as dt
import errno
import math
import os
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core.cli import app
from numpyml_core.config import dumps_toml

from blobs import EXPERIMENT, SOURCE

# Components for these tests, in a fake distribution beside the blobs dataset: a dataset that takes a
# while to load (so two runs overlap), a callback that pauses at the start of training (so a resume
# can arrive while the run is going), and a callback taking any value (strings with control
# characters, datetimes, odd keys) that does nothing with it.
TESTPLUG = '''
import time
from typing import Any
from fakeplug_blobs import Blobs
from numpyml_core import hookimpl


class SlowBlobs(Blobs):
    def __init__(self, samples: int = 1200, noise: float = 40.0, delay: float = 1.5):
        super().__init__(samples, noise)
        self.delay = delay

    def load(self, data_dir):
        time.sleep(self.delay)
        return super().load(data_dir)


class Pause:
    def __init__(self, seconds: float = 3.0):
        self.seconds = seconds

    @hookimpl
    def numpyml_on_run_start(self, run):
        time.sleep(self.seconds)


class Note:
    def __init__(self, text: str = "", when: Any = 0, **extra: Any):
        self.text, self.when, self.extra = text, when, extra


@hookimpl
def numpyml_register_components(register):
    register("dataset", "fakeplug_slowblobs", SlowBlobs)
    register("callback", "fakeplug_pause", Pause)
    register("callback", "fakeplug_note", Note)
'''

TWO_EPOCHS = EXPERIMENT.replace("epochs = 3", "epochs = 2")


@pytest.fixture
def site(make_dist):
    return make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs", "testplug": "fakeplug_runfolder"},
                     {"fakeplug_blobs": SOURCE, "fakeplug_runfolder": TESTPLUG})


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def cli(site: Path, *args: str, cwd: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.Popen([sys.executable, "-m", "numpyml_core.cli", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


# ------------------------------------------------------------------------------------------------
# item 1: one run folder, one run
# ------------------------------------------------------------------------------------------------
def test_two_runs_racing_for_one_output_folder(site, tmp_path):
    slow = EXPERIMENT.replace('"fakeplug_blobs"', '"fakeplug_slowblobs"').replace("epochs = 3", "epochs = 1")
    a = write(tmp_path / "a.toml", slow.replace("seed = 11", "seed = 1"))
    b = write(tmp_path / "b.toml", slow.replace("seed = 11", "seed = 2"))
    folder = tmp_path / "shared-run"
    processes = [cli(site, "run", str(e), "--output", str(folder), "--quiet") for e in (a, b)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = next(i for i, (code, _, _) in enumerate(results) if code == 0)
    loser_err = results[1 - winner][2]
    assert str(folder) in loser_err and "Traceback" not in loser_err
    config = tomllib.loads((folder / "config.toml").read_text())
    assert config["seed"] == [1, 2][winner]
    assert (folder / "model.safetensors").is_file() and (folder / "summary.json").is_file()


def test_two_runs_started_in_the_same_second_get_their_own_folders(site, tmp_path):
    slow = EXPERIMENT.replace('"fakeplug_blobs"', '"fakeplug_slowblobs"').replace("epochs = 3", "epochs = 1")
    experiment = write(tmp_path / "same.toml", slow)
    processes = [cli(site, "run", str(experiment), "--quiet", cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0, 0], results
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2, folders
    for folder in folders:
        assert {"config.toml", "model.safetensors", "summary.json", "metrics.csv"} <= {p.name for p in folder.iterdir()}


def test_claims_race_in_threads(tmp_path, monkeypatch):
    from numpyml_core import runfolder
    from numpyml_core.errors import UserError

    barrier = threading.Barrier(8)
    won, lost = [], []

    def claim_one():
        barrier.wait()
        try:
            won.append(runfolder.claim_new(tmp_path / "one"))
        except UserError as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=claim_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 7
    assert all(str(tmp_path / "one") in message for message in lost)
    won[0].release()

    monkeypatch.setattr(runfolder.time, "strftime", lambda fmt: "20240101-000000")
    barrier = threading.Barrier(8)
    claimed = []

    def claim_default():
        barrier.wait()
        claimed.append(runfolder.claim_default(tmp_path / "runs", "blobs"))

    threads = [threading.Thread(target=claim_default) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({c.path for c in claimed}) == 8
    assert sorted(p.name for p in (tmp_path / "runs").iterdir())[0] == "blobs-20240101-000000"
    for c in claimed:
        c.release()


def test_resume_while_the_run_is_still_going_is_refused(site, tmp_path):
    experiment = write(tmp_path / "paused.toml", TWO_EPOCHS + '\n[[callbacks]]\ntype = "fakeplug_pause"\nseconds = 4.0\n')
    folder = tmp_path / "live"
    process = cli(site, "run", str(experiment), "--output", str(folder), "--quiet")
    deadline = time.monotonic() + 60
    while not (folder / "config.toml").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    result = invoke("resume", folder, "--quiet")
    assert_clean_error(result, str(folder), "in use")
    again = invoke("run", experiment, "--output", folder, "--resume", "--quiet")
    assert_clean_error(again, str(folder), "in use")
    code = process.wait(timeout=120)
    assert code == 0, process.communicate()
    assert (folder / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------------
# item 2 (and 23): a resume never destroys results
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def finished(site, tmp_path):
    experiment = write(tmp_path / "blobs.toml", TWO_EPOCHS)
    nm.run(experiment, output=tmp_path / "run", progress=False)
    return tmp_path / "run"


@pytest.mark.parametrize("quiet", [[], ["--quiet"]])
def test_resume_without_last_but_with_best_refuses_and_keeps_everything(finished, quiet):
    (finished / "checkpoints" / "last.safetensors").unlink()
    before = snapshot(finished)
    result = invoke("resume", finished, *quiet)
    assert_clean_error(result, str(finished), "last.safetensors", "best.safetensors", "metrics.csv")
    assert "cp " in result.stderr  # what to do: copy best to last to continue from it
    assert snapshot(finished) == before


def test_resume_with_metrics_rows_but_no_checkpoint_refuses(finished):
    import shutil

    shutil.rmtree(finished / "checkpoints")
    (finished / "model.safetensors").unlink()
    (finished / "summary.json").unlink()
    before = snapshot(finished)
    assert_clean_error(invoke("resume", finished, "--quiet"), "metrics.csv", "2 epochs")
    assert snapshot(finished) == before


def test_resume_of_a_folder_with_nothing_trained_starts_and_says_so_even_quietly(finished):
    import shutil

    shutil.rmtree(finished / "checkpoints")
    for name in ("model.safetensors", "summary.json", "metrics.csv"):
        (finished / name).unlink()
    result = invoke("resume", finished, "--quiet")
    assert result.exit_code == 0, result.output
    assert "starting the run from the beginning" in result.stderr
    assert (finished / "checkpoints" / "last.safetensors").is_file()


@pytest.mark.parametrize("victim", ["checkpoints/last.safetensors", "model.safetensors", "metrics.csv"])
def test_a_run_file_replaced_by_a_folder_is_refused_before_anything_is_written(finished, victim):
    (finished / victim).unlink()
    (finished / victim).mkdir()
    (finished / victim / "keep").write_text("x")
    before = snapshot(finished)
    result = invoke("resume", finished, "--quiet")
    assert_clean_error(result, str(finished / victim), "folder")
    assert "Nothing was half-written" not in result.stderr
    assert snapshot(finished) == before


# ------------------------------------------------------------------------------------------------
# item 23: a full disk names the file
# ------------------------------------------------------------------------------------------------
def test_disk_full_names_the_file_being_written(tmp_path, monkeypatch):
    from numpyml_core import io as numpyml_io

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(numpyml_io.os, "fsync", full)
    target = tmp_path / "metrics.csv"
    with pytest.raises(OSError) as raised:
        numpyml_io.atomic_write_text(target, "epoch\n1\n")
    assert raised.value.filename == str(target) and raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_a_run_names_the_file_and_how_to_continue(site, tmp_path, monkeypatch):
    from numpyml_core import io as numpyml_io

    calls = []
    real_fsync = os.fsync

    def fills_up(fd):
        calls.append(fd)
        if len(calls) >= 2:  # config.toml is written, the disk is full by the end of epoch 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(numpyml_io.os, "fsync", fills_up)
    experiment = write(tmp_path / "blobs.toml", TWO_EPOCHS)
    folder = tmp_path / "run"
    result = invoke("run", experiment, "--output", folder, "--quiet")
    assert_clean_error(result, str(folder / "metrics.csv"), "No space left on device")
    assert "Nothing was half-written" not in result.stderr
    assert (folder / "config.toml").is_file() and not (folder / "metrics.csv").exists()


# ------------------------------------------------------------------------------------------------
# item 30: run files get the mode the umask gives
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_files_follow_the_umask(site, tmp_path, umask):
    experiment = write(tmp_path / "blobs.toml", TWO_EPOCHS)
    previous = os.umask(umask)
    try:
        nm.run(experiment, output=tmp_path / "run", progress=False)
    finally:
        os.umask(previous)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, (path, oct(path.stat().st_mode))


# ------------------------------------------------------------------------------------------------
# item 3: config.toml is valid TOML for every value an experiment can hold
# ------------------------------------------------------------------------------------------------
timezones = st.builds(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)),
                      st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
scalars = st.one_of(
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.datetimes(timezones=st.none() | timezones),
    st.dates(),
    st.times(),
)
documents = st.recursive(
    st.dictionaries(st.text(), scalars, max_size=4),
    lambda children: st.dictionaries(
        st.text(), st.one_of(scalars, children, st.lists(scalars, max_size=3), st.lists(children, max_size=3)),
        max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_toml_writer_round_trips_generated_documents(document):
    assert tomllib.loads(dumps_toml(document)) == document


def test_toml_writer_keeps_floats_exact_and_non_finite():
    document = {"a": 0.1 + 0.2, "b": 1e-310, "c": -0.0, "d": math.inf, "e": -math.inf, "f": 2.0**63}
    again = tomllib.loads(dumps_toml(document))
    assert again == document and math.copysign(1, again["c"]) == -1
    assert math.isnan(tomllib.loads(dumps_toml({"n": math.nan}))["n"])
    assert tomllib.loads(dumps_toml({"x": None, "t": {"y": None, "z": 1}})) == {"t": {"z": 1}}


NOTE = '''
[[callbacks]]
type = "fakeplug_note"
text = "bell \\u0007, carriage return \\r, escape \\u001b[31m red \\u001b[0m, del \\u007f, nul \\u0000"
when = 1979-05-27T07:32:00-08:00
"clé ü" = "non-ASCII key"
"a.b" = 1
"" = "empty key"
day = 1979-05-27
hour = 07:32:00.999999
deep = [{a = [{b = 1, c = "\\u0007"}]}, {d = []}]
'''


def test_a_run_with_control_characters_and_datetimes_resumes_and_shows(site, tmp_path):
    experiment = write(tmp_path / "note.toml", TWO_EPOCHS + NOTE)
    folder = tmp_path / "run"
    result = invoke("run", experiment, "--output", folder, "--quiet")
    assert result.exit_code == 0, (result.output, result.exception)
    written = tomllib.loads((folder / "config.toml").read_text())
    original = tomllib.loads(experiment.read_text())["callbacks"][0]
    assert {k: v for k, v in written["callbacks"][0].items()} == original
    result = invoke("resume", folder, "--quiet")
    assert result.exit_code == 0, (result.output, result.exception)
    result = invoke("show", folder)
    assert result.exit_code == 0, (result.output, result.exception)


def test_a_run_that_fails_before_training_leaves_no_folder(site, tmp_path):
    experiment = write(tmp_path / "mnist.toml", TWO_EPOCHS.replace('"fakeplug_blobs"', '"mnist"'))
    folder = tmp_path / "deep" / "er" / "run"
    result = invoke("run", experiment, "--output", folder, "--quiet", "--data-dir", tmp_path / "nodata")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "deep").exists()


# ------------------------------------------------------------------------------------------------
# item 4: the metrics file may not be one of the run's own files, nor leave the folder
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("filename", ["config.toml", "model.safetensors", "summary.json", "checkpoints",
                                      ".numpyml.lock", "report.html", "..", ".", "/tmp/x.csv", "../x.csv",
                                      "sub/x.csv", "CONFIG.TOML", "a\\u0000b"])
def test_metrics_csv_filename_may_not_be_a_run_file(site, tmp_path, filename):
    experiment = write(tmp_path / "bad.toml", TWO_EPOCHS + f'\n[[callbacks]]\ntype = "metrics_csv"\nfilename = "{filename}"\n')
    assert_clean_error(invoke("validate", experiment), str(experiment), "filename")
    folder = tmp_path / "run"
    assert_clean_error(invoke("run", experiment, "--output", folder, "--quiet"), "filename")
    assert not folder.exists()


def test_metrics_csv_with_another_plain_name_is_fine(site, tmp_path):
    experiment = write(tmp_path / "ok.toml", TWO_EPOCHS + '\n[[callbacks]]\ntype = "metrics_csv"\nfilename = "curves.csv"\n')
    assert invoke("run", experiment, "--output", tmp_path / "run", "--quiet").exit_code == 0
    assert (tmp_path / "run" / "curves.csv").is_file()


# ------------------------------------------------------------------------------------------------
# item 5: name is a safe file name
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a\\u0000b", ".hidden", "a/b", "x" * 200, "é\\u0007"])
def test_name_must_be_a_safe_file_name(site, tmp_path, monkeypatch, name):
    experiment = write(tmp_path / "named.toml", TWO_EPOCHS.replace('name = "blobs"', f'name = "{name}"'))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert_clean_error(invoke("validate", experiment), str(experiment), "'name'", "letters, digits")
    assert_clean_error(invoke("run", experiment, "--quiet"), "'name'")
    assert list(work.iterdir()) == [] and not (tmp_path / "x").exists()


def test_default_name_from_an_unsafe_file_name_is_made_safe(site, tmp_path, monkeypatch):
    experiment = write(tmp_path / "my exp!.toml", TWO_EPOCHS.replace('name = "blobs"\n', ""))
    monkeypatch.chdir(tmp_path)
    result = invoke("run", experiment, "--quiet")
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("my_exp_-")


# ------------------------------------------------------------------------------------------------
# item 17: an override onto a value that is not a table
# ------------------------------------------------------------------------------------------------
def test_epochs_override_when_training_is_not_a_table(site, tmp_path):
    text = "training = 5\n" + TWO_EPOCHS[: TWO_EPOCHS.index("[training]")]
    experiment = write(tmp_path / "t.toml", text)
    result = invoke("run", experiment, "--epochs", "1", "--quiet", "--output", tmp_path / "run")
    assert_clean_error(result, str(experiment), "[training]", "expected a table")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# item 31: what --epochs does to a schedule, and metrics.csv's columns, are documented
# ------------------------------------------------------------------------------------------------
def test_epochs_help_says_a_schedule_is_rescaled():
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert "cosine" in text and "one_cycle" in text and "rescale" in text


def test_readme_lists_the_metrics_columns_and_the_rescaling():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `metrics.csv`"))
    assert "`learning_rate`" in row
    assert "rescale" in readme and "--epochs" in readme
