"""The commands ``numpyml sweep`` (many trials of one experiment, locally or on Ray) and ``numpyml experiments``."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from numpyml_core import UserError
from numpyml_core.plugin_api import did_you_mean, plugin_manager, user_errors

from .runner import METRICS


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def sweep(
    experiment: str = typer.Argument(..., metavar="EXPERIMENT",
                                     help="An experiment file, or the name of a bundled one (numpyml experiments)."),
    grid: list[str] = typer.Option([], "--grid", metavar="KEY=V1,V2,...",
                                   help="Values of one key (repeatable: the cartesian product of all). TOML values; "
                                        "a bare word is a string."),
    random_: list[str] = typer.Option([], "--random", metavar="KEY=DIST",
                                      help="Random search: draw KEY from loguniform(LOW,HIGH), uniform(LOW,HIGH), "
                                           "randint(LOW,HIGH) or choice(V1,V2,...) (repeatable; needs --samples)."),
    samples: Optional[int] = typer.Option(None, "--samples", metavar="N",
                                          help="Random search: N draws of the --random keys (for each grid point)."),
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="A value for every trial (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random search's draws (not of the trials' training)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", metavar="N",
                                       help="Trials at once, each a process (default: one per core). Each gets "
                                            "cores/N BLAS threads (at least 1)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="DIR",
                                          help="The sweep folder (default sweeps/<experiment name>): one run folder "
                                               "per trial and sweep.csv. The same command again continues it."),
    metric: str = typer.Option("validation_accuracy", "--metric",
                               help=f"What the final table is sorted by: {', '.join(METRICS)}."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR)."),
    ray_address: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS",
                                              help="Run the trials as Ray tasks: 'local' starts Ray on this machine, "
                                                   "'auto' or HOST:PORT joins a cluster (needs numpyml[ray]; the "
                                                   "output folder must be on a file system every node sees)."),
    scheduler: str = typer.Option("none", "--scheduler", help="'asha': stop poor trials early (Ray Tune's ASHA: at "
                                  "epochs G, G*F, G*F^2, ... only the best 1/F of the trials that got there go on; "
                                  "needs numpyml[tune] and a validation split). 'none': every trial runs to the end."),
    grace_period: int = typer.Option(1, "--grace-period", metavar="G",
                                     help="With --scheduler asha: epochs every trial trains before it may be stopped."),
    reduction_factor: float = typer.Option(3.0, "--reduction-factor", metavar="F",
                                           help="With --scheduler asha: 1/F of the trials go on at each rung."),
) -> None:
    """Train many variants of an experiment (a grid, or random search) in parallel processes or on a Ray
    cluster: one run folder per trial, sweep.csv, and a table of the results. Resumable: the same command
    on the same folder skips finished trials and resumes interrupted ones. docs/sweeps.md.
    """
    from .sweep import execute

    words = ["numpyml", "sweep", experiment, *(f"--grid={g}" for g in grid), *(f"--random={r}" for r in random_),
             *([f"--samples={samples}", f"--seed={seed}"] if samples is not None else []),
             *(f"--set={s}" for s in set_), *([f"--output={output}"] if output is not None else [])]
    command = shlex.join(words)  # what sweep.json records: the options that define the sweep
    try:
        with user_errors():
            if metric not in METRICS:
                raise UserError(f"--metric {metric}: not a column of sweep.csv to sort by{did_you_mean(metric, METRICS)}; "
                                f"choose one of {', '.join(METRICS)}.")
            if scheduler not in ("none", "asha"):
                raise UserError(f"--scheduler {scheduler}: expected 'asha' (stop poor trials early) or 'none'"
                                f"{did_you_mean(scheduler, ['asha', 'none'])}.")
            if jobs is not None and jobs < 1:
                raise UserError(f"--jobs must be at least 1, got {jobs}.")
            status = execute(experiment=experiment, grid=grid, random_=random_, samples=samples, fixed=set_, seed=seed,
                             jobs=jobs or _cores(), cores=_cores(), output=output, metric=metric,
                             data_dir=data_dir, ray_address=ray_address, manager=plugin_manager(), command=command,
                             scheduler=scheduler, grace_period=grace_period, reduction_factor=reduction_factor)
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        raise typer.Exit(130) from None
    if status:
        raise typer.Exit(status)


def experiments(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The experiments that come with numpyml (run one by name: numpyml run mnist), with the first line of
    each file's description and the test accuracy its header reports."""
    import json

    from .catalog import describe_all

    entries = describe_all()
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not entries:
        console.print("no bundled experiments found (this installation of numpyml has no experiments folder).")
        return
    table = Table(title=f"bundled experiments ({len(entries)}): numpyml run NAME")
    table.add_column("NAME", no_wrap=True)
    table.add_column("DESCRIPTION", overflow="fold")
    table.add_column("MEASURED", overflow="fold")
    for entry in entries:
        table.add_row(escape(entry["name"]), escape(entry["description"]), escape(entry["measured"]))
    console.print(table)


def register(app: Any) -> None:
    """Add ``sweep`` and ``experiments`` to ``app`` (the sweep plugin's ``numpyml_register_commands`` hook)."""
    app.command("sweep")(sweep)
    app.command("experiments")(experiments)
