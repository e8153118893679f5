"""One trial of a sweep, in a process of its own: ``python -m numpyml_sweep.trial`` reads a JSON request on stdin.

The request: ``{"experiment": TOML text, "source": its file name, "overrides": {dotted key: value},
"output": the run folder, "data_dir": folder or null}``. The trial is trained with the Python API
(``numpyml_core.run``) into ``output``: a new run, or, when ``output`` already holds a run started
before (config.toml), that run resumed from its last checkpoint; a finished one (summary.json) is left
alone. The parent sets the BLAS thread variables in this process's environment, so NumPy, which
loads after it started, uses that many threads.

Exit status: 0 trained (or already finished), 130 interrupted (SIGINT: the batch in progress ends and
the checkpoint is written first, as for ``numpyml run``), 2 a user error (the message on stderr), 1
anything else. When the parent process goes away (killed), the trial stops the same way as on SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import tomllib


def _stop_when_orphaned(parent: int) -> None:
    """Send this process SIGINT (an orderly stop with a checkpoint) once its parent has gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="numpyml-sweep-parent-watch", daemon=True).start()


def run_trial(request: dict) -> int:
    """Train (or resume) one trial; its exit status."""
    import numpyml_core as nm  # before NumPy: sets OpenBLAS's thread timeout

    folder = nm.RunFolder(request["output"])
    if folder.summary_path.is_file():
        return 0
    deadline = time.monotonic() + float(request.get("wait_for_folder", 0))
    try:
        experiment = nm.Experiment.from_dict(tomllib.loads(request["experiment"]), source=request["source"],
                                             overrides=request["overrides"])
        while True:
            try:
                nm.run(experiment, output=request["output"], data_dir=request.get("data_dir"), progress=False,
                       resume=folder.is_run())
                break
            except nm.RunFolderInUse:  # a retry after a node died: its trial may still be stopping
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    except nm.TrainingInterrupted:
        return 130
    except KeyboardInterrupt:  # before training started: nothing to keep
        return 130
    except nm.RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except nm.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    try:
        parent = os.getppid()
        request = json.loads(sys.stdin.read())
        _stop_when_orphaned(parent)
        status = run_trial(request)
    except KeyboardInterrupt:  # while starting: nothing written yet
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    main()
