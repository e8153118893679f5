"""Wall-clock time of a 4-trial sweep with ``--jobs 1`` and ``--jobs 2`` (issue 18's figure).

    flock /tmp/numpyml-cpu.lock uv run --no-sync python benchmarks/sweep.py [--epochs 1] [--experiment mnist]

The grid: 2 learning rates x 2 batch sizes (``optimizer.learning_rate=0.1,0.5``,
``training.batch_size=32,64``) of ``--epochs`` (1) of experiments/mnist.toml, real MNIST from
``NUMPYML_DATA_DIR`` (or ``--data-dir``). Each configuration runs ``numpyml sweep`` as a user would
(a fresh process, a fresh sweep folder in a temporary directory, its trials' processes started by
the sweep) and is timed from start to end, data loading and process starts included: the time a
user waits. ``--jobs 1`` runs the trials one after the other, each with as many BLAS threads as
there are cores; ``--jobs 2`` runs two at once with cores/2 BLAS threads each. Prints both times and
their ratio; ``--ray`` also times ``--jobs 2 --ray local`` (Ray started for the sweep and stopped after
it, included in the time; needs ``numpyml[ray]``). ``--repeats`` (1) runs them again, alternating, and keeps
each one's best time. Run
it alone on the machine (``flock``), or the figures say more about the neighbours than about numpyml.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["--grid", "optimizer.learning_rate=0.1,0.5", "--grid", "training.batch_size=32,64"]


def timed_sweep(experiment: str, jobs: int, epochs: int, data_dir: str | None, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="numpyml-sweep-bench-") as folder:
        command = [sys.executable, "-m", "numpyml_core.cli", "sweep", experiment, *GRID, "--set",
                   f"training.epochs={epochs}", *extra, "--jobs", str(jobs), "--output", str(Path(folder) / "sweep")]
        if data_dir:
            command += ["--data-dir", data_dir]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"numpyml sweep --jobs {jobs} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=str(Path(__file__).resolve().parent.parent / "experiments" / "mnist.toml"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data-dir", default=os.environ.get("NUMPYML_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="more --set options for every trial (a smoke test: --set dataset.validation=50)")
    parser.add_argument("--ray", action="store_true", help="also time --jobs 2 --ray local")
    args = parser.parse_args()
    extra = [word for item in args.set for word in ("--set", item)]
    best = {1: float("inf"), 2: float("inf"), "ray": float("inf")}
    for _ in range(args.repeats):
        for jobs in (1, 2):
            best[jobs] = min(best[jobs], timed_sweep(args.experiment, jobs, args.epochs, args.data_dir, extra))
        if args.ray:
            best["ray"] = min(best["ray"], timed_sweep(args.experiment, 2, args.epochs, args.data_dir,
                                                       [*extra, "--ray", "local"]))
    print(f"4-trial grid (2 learning rates x 2 batch sizes, {args.epochs} epoch{'s' if args.epochs != 1 else ''} of "
          f"{Path(args.experiment).name}), {os.cpu_count()} cores:")
    print(f"  --jobs 1: {best[1]:.1f} s")
    print(f"  --jobs 2: {best[2]:.1f} s")
    print(f"  speed-up: {best[1] / best[2]:.2f}x")
    if args.ray:
        print(f"  --jobs 2 --ray local: {best['ray']:.1f} s ({best[1] / best['ray']:.2f}x --jobs 1; "
              "Ray's start included)")


if __name__ == "__main__":
    main()
