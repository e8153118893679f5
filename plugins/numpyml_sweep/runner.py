"""Running a sweep: its folder (sweep.json, sweep.csv, one run folder per trial) and the trials' processes.

Every trial runs in a process of its own (``python -m numpyml_sweep.trial``, :mod:`.trial`), started
here for ``--jobs`` (at most that many at once) or inside a Ray task for ``--ray``; either way the
process gets the BLAS thread variables in its environment before NumPy loads, and is its own session,
so a Ctrl-C reaches it once, forwarded from here: it ends its batch, writes its checkpoint, and exits
130. What a trial achieved is read from its run folder (summary.json), never from the process, so a
sweep folder tells its state to whoever reads it: finished (summary.json), interrupted (config.toml
but no summary.json: resumed from its checkpoint next time), pending (no run yet).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from numpyml_core import RunFailed, RunFolder, UserError
from numpyml_core.plugin_api import atomic_write_text

from .space import Space, Trial, value_text

SWEEP_JSON = "sweep.json"
SWEEP_CSV = "sweep.csv"
LOCK = ".sweep.lock"
#: sweep.csv's columns after ``trial`` and the swept keys
RESULT_COLUMNS = ("status", "validation_accuracy", "test_accuracy", "seconds")
#: the ``--metric`` choices: column -> higher is better
METRICS = {"validation_accuracy": True, "test_accuracy": True, "seconds": False}
#: seconds a Ray task's trial waits for its run folder's lock (held by an earlier attempt that is stopping)
RETRY_WAIT = 120.0
#: ``stop_early(trial, run folder)``: whether to stop a running trial now (``--scheduler asha``)
StopCheck = Callable[[Trial, Path], bool]
#: the environment variables that bound a process's BLAS and OpenMP threads
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


@dataclass
class Outcome:
    """Where a trial stands: ``status`` (pending, running, finished, interrupted, failed) and its figures."""

    status: str = "pending"
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    message: str = ""
    node: str = ""

    def value(self, metric: str) -> float | None:
        return getattr(self, metric)


def read_outcome(run_dir: Path) -> Outcome:
    """A trial's state as its run folder shows it."""
    folder = RunFolder(run_dir)
    if folder.summary_path.is_file():
        try:
            summary = folder.read_summary()
        except UserError as exc:
            return Outcome("failed", message=str(exc))
        figures = {key: summary.get(key) for key in ("validation_accuracy", "test_accuracy", "seconds")}
        return Outcome("finished", **{k: float(v) if isinstance(v, (int, float)) else None for k, v in figures.items()})
    return Outcome("interrupted" if folder.is_run() else "pending")


def stopped_outcome(run_dir: Path, epoch: int | None = None) -> Outcome:
    """A trial stopped early (``--scheduler asha``) after ``epoch`` (default: its last): its last validation
    accuracy and its time."""
    metrics = RunFolder(run_dir).read_metrics()
    epoch = len(metrics.get("epoch", [])) if epoch is None else epoch
    values = [v for v in metrics.get("validation_accuracy", []) if v == v]  # not NaN
    seconds = [v for v in metrics.get("seconds", []) if v == v]
    return Outcome("stopped", validation_accuracy=values[-1] if values else None,
                   seconds=round(sum(seconds), 3) if seconds else None, message=f"stopped early after epoch {epoch}")


def thread_environment(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with every BLAS thread variable set to ``threads``."""
    env = dict(os.environ if base is None else base)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


class SweepFolder:
    """The sweep's folder: its definition (sweep.json), its table (sweep.csv), the trials' run folders.

    Held with a lock (``.sweep.lock``, ``flock``) while a sweep runs in it: a second sweep command on
    the same folder is refused until the first ends."""

    def __init__(self, path: Path, keys: list[str], trials: list[Trial]) -> None:
        self.path = path
        self.keys = keys
        self.trials = trials
        self.outcomes: dict[int, Outcome] = {}
        self._lock_fd: int | None = None

    def run_dir(self, trial: Trial) -> Path:
        return self.path / trial.name

    # -- claiming ----------------------------------------------------------------------------------
    def claim(self, record: dict[str, Any], command: str) -> None:
        """Create the folder, or check that it holds this same sweep; lock it; read each trial's state."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise UserError(f"--output {path}: exists and is not a folder; choose another path.")
        definition_file = path / SWEEP_JSON
        if path.is_dir() and not definition_file.is_file() and any(p.name != LOCK for p in path.iterdir()):
            raise UserError(f"--output {path}: the folder exists, is not empty and holds no {SWEEP_JSON}, so it is not "
                            "a sweep folder; numpyml never writes into it. Choose another --output.")
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as exc:
            raise UserError(f"--output {path}: cannot create the sweep folder: {exc.strerror or exc}.") from None
        if definition_file.is_file():
            try:
                saved = json.loads(definition_file.read_text(encoding="utf-8"))
                if not isinstance(saved, dict):
                    raise ValueError("not an object")
            except (OSError, ValueError) as exc:
                self.release()
                raise UserError(f"{definition_file}: cannot be read ({exc}); it says which sweep the folder holds. "
                                "Choose another --output.") from None
            differences = [key for key in ("experiment_sha256", "definition")
                           if _canonical(saved.get(key)) != _canonical(record[key])]
            if differences:
                self.release()
                what = " and ".join({"experiment_sha256": "the experiment file's contents",
                                     "definition": "--grid/--random/--samples/--seed/--set"}[key] for key in differences)
                raise UserError(
                    f"--output {path}: the folder holds another sweep (made by: {saved.get('command', '?')}); this "
                    f"command differs in {what}. To continue that sweep, repeat its command; to start this one, "
                    "choose another --output."
                )
        else:
            atomic_write_text(definition_file, json.dumps({**record, "command": command}, indent=2, default=str) + "\n")
        for trial in self.trials:
            self.outcomes[trial.number] = read_outcome(self.run_dir(trial))

    def _lock(self) -> None:
        """Hold ``.sweep.lock``; the holder removes it before letting go, so a lock taken on a file
        that is no longer the one named is taken again."""
        lock = self.path / LOCK
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f"--output {self.path}: another sweep is running in this folder; wait for it to end "
                                "(or stop it with Ctrl-C), then run the command again.") from None
            try:
                if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                    self._lock_fd = fd
                    return
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path / LOCK)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- sweep.csv --------------------------------------------------------------------------------
    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["trial", *self.keys, *RESULT_COLUMNS])
        for trial in self.trials:
            outcome = self.outcomes[trial.number]
            figures = [("" if v is None else repr(v)) for v in
                       (outcome.validation_accuracy, outcome.test_accuracy, outcome.seconds)]
            writer.writerow([trial.number, *(value_text(trial.values[k]) for k in self.keys), outcome.status, *figures])
        return buffer.getvalue()

    def previous_statuses(self) -> dict[int, str]:
        """Each trial's status in the sweep.csv a previous command left (``{}`` when there is none)."""
        try:
            with open(self.path / SWEEP_CSV, newline="", encoding="utf-8") as handle:
                return {int(row["trial"]): row.get("status", "") for row in csv.DictReader(handle)
                        if (row.get("trial") or "").isdigit()}
        except (OSError, UnicodeDecodeError, csv.Error, KeyError):
            return {}

    def write_csv(self) -> None:
        atomic_write_text(self.path / SWEEP_CSV, self.csv_text())


def _canonical(value: Any) -> str:
    return json.dumps(json.loads(json.dumps(value, default=str)), sort_keys=True)


def sweep_record(experiment_text: str, source: str, space: Space, trials: list[Trial]) -> dict[str, Any]:
    """What sweep.json holds (and what decides whether a folder holds the same sweep)."""
    return {
        "experiment": source,
        "experiment_sha256": hashlib.sha256(experiment_text.encode()).hexdigest(),
        "definition": space.definition(),
        "trials": [{"trial": t.number, "run": t.name, "values": t.values} for t in trials],
    }


def trial_request(experiment_text: str, source: str, fixed: dict[str, Any], trial: Trial, run_dir: Path,
                  data_dir: str | None) -> str:
    """The JSON a trial process reads on stdin (:mod:`.trial`)."""
    return json.dumps({"experiment": experiment_text, "source": source, "overrides": {**fixed, **trial.values},
                       "output": str(run_dir), "data_dir": data_dir}, default=str)


def _tail(text: str, limit: int = 1500) -> str:
    """The error paragraph(s) at the end of a trial's stderr."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    chosen = errors[-1][len("error: "):] if errors else " / ".join(lines[-3:])
    return chosen[-limit:] if chosen else "the trial process ended without a message"


def start_trial(request: str, env: dict[str, str]) -> tuple[subprocess.Popen, Any]:
    """Start a trial process (its own session: a Ctrl-C reaches it only when forwarded) fed ``request``."""
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "numpyml_sweep.trial"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True, text=True)
    try:
        process.stdin.write(request)
        process.stdin.close()
    except BrokenPipeError:  # it died at once; its stderr says why
        pass
    return process, log


def finish_trial(returncode: int, stderr: str, run_dir: Path) -> Outcome:
    """The outcome of a trial process that ended with ``returncode``."""
    outcome = read_outcome(run_dir)
    if outcome.status == "finished":
        return outcome
    if returncode in (130, -signal.SIGINT):
        return outcome  # interrupted (a run to resume) or pending (stopped before training started)
    return Outcome("failed", message=_tail(stderr) if returncode else "the trial ended without a summary.json")


def _interrupt(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)


# --------------------------------------------------------------------------------------------------
# local processes
# --------------------------------------------------------------------------------------------------
def run_local(todo: list[tuple[Trial, str, Path]], jobs: int, env: dict[str, str],
              done: Callable[[Trial, Outcome], None], started: Callable[[Trial], None],
              stop_early: StopCheck | None = None) -> bool:
    """Run ``todo`` ((trial, request, run folder)) with at most ``jobs`` processes at once, calling
    ``done`` as each ends; a trial for which ``stop_early(trial, run folder)`` says so is stopped (it
    writes its checkpoint). Returns False when a Ctrl-C stopped the sweep (every running trial was
    asked to stop and has ended: each wrote its checkpoint)."""
    queue = list(todo)
    running: dict[subprocess.Popen, tuple[Trial, Any, Path]] = {}

    def collect() -> None:
        for process in [p for p in running if p.poll() is not None]:
            trial, log, run_dir = running.pop(process)
            log.seek(0)
            done(trial, finish_trial(process.returncode, log.read(), run_dir))
            log.close()

    try:
        while queue or running:
            while queue and len(running) < jobs:
                trial, request, run_dir = queue.pop(0)
                process, log = start_trial(request, env)
                running[process] = (trial, log, run_dir)
                started(trial)
            time.sleep(0.1)
            for process, (trial, _, run_dir) in running.items():
                if stop_early is not None and stop_early(trial, run_dir):
                    _interrupt(process)
            collect()
    except KeyboardInterrupt:
        for process in running:
            _interrupt(process)
        while running:
            try:
                time.sleep(0.1)
                collect()
            except KeyboardInterrupt:  # again: the trials abort at once (their last checkpoints stay)
                for process in running:
                    _interrupt(process)
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------------
def ray_trial(request: str) -> dict[str, Any]:
    """A Ray task: one trial process on this node, with one BLAS thread (the task holds one CPU).

    Cancelling the task (the sweep's Ctrl-C) forwards one SIGINT to the trial, which writes its
    checkpoint and ends; the task waits for that. If the node dies, Ray runs the task again elsewhere
    and the trial resumes from its last checkpoint (the sweep folder is on a shared file system)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    # a run again after its node died may find the first attempt still stopping (a network partition, or the
    # orphaned trial writing its checkpoint): it waits for the run folder's lock
    request = json.dumps({**json.loads(request), "wait_for_folder": RETRY_WAIT})
    process, log = start_trial(request, thread_environment(1))
    forwarded = False
    while True:
        try:
            process.wait()
            break
        except KeyboardInterrupt:
            if not forwarded:
                _interrupt(process)
                forwarded = True
    log.seek(0)
    return {"returncode": process.returncode, "stderr": log.read()[-20000:], "node": node}


def import_ray() -> Any:
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # workers use this interpreter, not 'uv run'
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray, which is not installed: pip install 'numpyml[ray]' (or uv sync --extra "
                        "ray in this project). Without --ray the trials run in local processes (--jobs).") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str, cpus: int) -> Iterator[Any]:
    """Ray started (``local``: a Ray instance of ``cpus`` CPUs on this machine) or joined (``auto``,
    ``host:port``) for the sweep, and shut down after it."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
    if address == "local":
        options.update(address="local", num_cpus=cpus)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RunFailed(f"--ray {address}: cannot start or join Ray: {exc}. For a cluster, start it with 'ray start "
                        "--head' and pass its address (docs/sweeps.md).") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def run_ray(ray: Any, todo: list[tuple[Trial, str, Path]], done: Callable[[Trial, Outcome], None],
            retries: int = 3, stop_early: StopCheck | None = None) -> bool:
    """Run ``todo`` as Ray tasks of one CPU each (Ray queues what does not fit), calling ``done`` as
    each ends; a trial for which ``stop_early(trial, run folder)`` says so is cancelled (it writes its
    checkpoint). A task whose worker or node dies is run again (``retries`` times). Returns False when
    a Ctrl-C stopped the sweep (running trials were cancelled: each wrote its checkpoint)."""
    remote = ray.remote(num_cpus=1, max_retries=retries)(ray_trial)
    pending = {remote.remote(request): (trial, run_dir) for trial, request, run_dir in todo}

    def collect(refs: list[Any]) -> None:
        for ref in refs:
            trial, run_dir = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # cancelled, or failed past its retries: the folder tells the rest
                outcome = read_outcome(run_dir)
                if not isinstance(exc, ray.exceptions.TaskCancelledError) and outcome.status != "finished":
                    outcome = Outcome("failed", message=f"the Ray task failed: {str(exc).splitlines()[0]}")
            else:
                outcome = finish_trial(result["returncode"], result["stderr"], run_dir)
                outcome.node = result["node"]
            done(trial, outcome)

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            collect(ready)
            for ref, (trial, run_dir) in pending.items():
                if stop_early is not None and stop_early(trial, Path(run_dir)):
                    ray.cancel(ref)  # the task forwards SIGINT to its trial, which writes its checkpoint
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            with contextlib.suppress(KeyboardInterrupt):
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
                collect(ready)
        for ref in list(pending):
            trial, run_dir = pending.pop(ref)
            done(trial, read_outcome(run_dir))
        return False
    return True
