"""``numpyml sweep``: check everything, then run the trials that are not finished and show the results."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import numpyml_core as nm
from numpyml_core import ConfigError, UserError

from .catalog import resolve_experiment
from .runner import (METRICS, Outcome, SweepFolder, ray_session, read_outcome, run_local, run_ray, stopped_outcome,
                     sweep_record, thread_environment, trial_request)
from .space import Space, Trial, labels, parse_space, trials as make_trials, value_text


def parse_value(text: str, where: str) -> Any:
    """One command-line value read exactly as ``numpyml run --set`` reads it (``numpyml_core.parse_overrides``)."""
    del where
    return nm.parse_overrides([f"value={text}"])["value"]


def _values(trial: Trial) -> str:
    return ", ".join(f"{key}={value_text(value)}" for key, value in trial.values.items())


def validate_trials(table: dict[str, Any], source: str, space: Space, trials: list[Trial], manager: Any,
                    need_validation: bool = False) -> int:
    """Every trial's experiment validated (and its network built) before anything runs; with ``need_validation``
    (early stopping compares validation accuracies) each must hold out a validation split. The most epochs."""
    epochs = 0
    for trial in trials:
        try:
            experiment = nm.Experiment.from_dict(table, source=source, overrides={**space.fixed, **trial.values},
                                                 manager=manager)
            experiment.validate()
        except ConfigError as exc:
            raise ConfigError(f"trial {trial.number} ({_values(trial)}): {exc}") from None
        if need_validation and not experiment.spec.validation:
            raise UserError(f"--scheduler asha: trial {trial.number} ({_values(trial)}) has no validation split, and "
                            "early stopping compares the trials' validation accuracy (never the test split's). Hold "
                            "some training data out: [dataset] validation = N, or --set dataset.validation=N.")
        epochs = max(epochs, experiment.spec.training.epochs)
    return epochs


def execute(*, experiment: str, grid: list[str], random_: list[str], samples: int | None, fixed: list[str], seed: int,
            jobs: int, cores: int, output: Path | None, metric: str, data_dir: str | None, ray_address: str | None,
            manager: Any, command: str, scheduler: str = "none", grace_period: int = 1,
            reduction_factor: float = 3.0) -> int:
    """Run the sweep; its exit status (0 all trials finished, 1 some failed, 130 interrupted)."""
    path = resolve_experiment(experiment)
    base = nm.Experiment.load(path, manager=manager)  # the file itself first: its errors name it alone
    text = path.read_text(encoding="utf-8")
    table = tomllib.loads(text)
    space = parse_space(grid, random_, fixed, samples, seed, value_parser=parse_value, fixed_parser=nm.parse_overrides)
    trials = make_trials(space)
    epochs = validate_trials(table, str(path), space, trials, manager, need_validation=scheduler == "asha")
    early = None
    if scheduler == "asha":
        from .early import EarlyStopping

        early = EarlyStopping([t.number for t in trials], epochs, grace_period, reduction_factor)
    folder = SweepFolder(Path(output or Path("sweeps") / base.name).absolute(), space.keys, trials)
    if data_dir is None:
        data_dir = os.environ.get("NUMPYML_DATA_DIR") or None
    data_dir = str(Path(data_dir).absolute()) if data_dir else None
    folder.claim(sweep_record(text, str(path), space, trials), command)
    try:
        return _run(folder, text, str(path), space, jobs, cores, metric, data_dir, ray_address, early)
    finally:
        folder.release()


def _run(folder: SweepFolder, text: str, source: str, space: Space, jobs: int, cores: int, metric: str,
         data_dir: str | None, ray_address: str | None, early: Any = None) -> int:
    trials = folder.trials
    if early is not None:  # trials stopped early before stay stopped; the scheduler learns the ended trials first
        previous = folder.previous_statuses()
        for trial in trials:
            outcome, run_dir = folder.outcomes[trial.number], folder.run_dir(trial)
            if outcome.status == "interrupted" and previous.get(trial.number) == "stopped":
                folder.outcomes[trial.number] = stopped_outcome(run_dir)
            if folder.outcomes[trial.number].status in ("finished", "stopped"):
                early.replay(trial.number, run_dir)
    todo = [t for t in trials if folder.outcomes[t.number].status not in ("finished", "stopped")]
    counts = {status: sum(1 for t in trials if folder.outcomes[t.number].status == status)
              for status in ("finished", "interrupted")}
    folder.write_csv()
    where = f"on Ray ({ray_address})" if ray_address else (
        f"{min(jobs, len(todo))} at a time, {max(1, cores // jobs)} BLAS thread{'s' if cores // jobs > 1 else ''} each"
        if todo else "")
    resumed = f", {counts['interrupted']} to resume" if counts["interrupted"] else ""
    print(f"sweep of {len(trials)} trials in {folder.path}: {counts['finished']} finished{resumed}, "
          f"{len(todo) - counts['interrupted']} to start" + (f"; {where}" if where else ""), flush=True)
    width = len(str(len(trials)))
    finished_now = [0]

    def started(trial: Trial) -> None:
        folder.outcomes[trial.number] = Outcome("running")

    def done(trial: Trial, outcome: Outcome) -> None:
        if early is not None and trial.number in early.stopped and outcome.status in ("interrupted", "pending"):
            outcome = stopped_outcome(folder.run_dir(trial), early.stopped[trial.number])
        folder.outcomes[trial.number] = outcome
        folder.write_csv()
        finished_now[0] += 1
        figures = ", ".join(f"{name.split('_')[0]} {100 * value:.2f}%" for name in ("validation_accuracy", "test_accuracy")
                            if (value := outcome.value(name)) is not None)
        detail = {"finished": f"finished in {outcome.seconds or 0:.1f}s" + (f": {figures}" if figures else ""),
                  "failed": f"FAILED: {outcome.message}",
                  "interrupted": "interrupted (its checkpoint is kept; the same command resumes it)",
                  "pending": "stopped before training started",
                  "stopped": f"{outcome.message} (ASHA): validation {100 * (outcome.validation_accuracy or 0):.2f}%"
                  }.get(outcome.status, outcome.status)
        node = f" [node {outcome.node[:8]}]" if outcome.node else ""
        print(f"[{finished_now[0]:>{width}}/{len(todo)}] trial {trial.number} ({_values(trial)}){node}: {detail}",
              flush=True)

    requests = [(t, trial_request(text, source, space.fixed, t, folder.run_dir(t), data_dir), folder.run_dir(t))
                for t in todo]
    completed = True
    stop_early = None if early is None else (lambda trial, run_dir: early.poll(trial.number, run_dir) is not None)
    if todo:
        if ray_address:
            with ray_session(ray_address, jobs) as ray:
                completed = run_ray(ray, requests, done, stop_early=stop_early)
        else:
            completed = run_local(requests, min(jobs, len(todo)), thread_environment(max(1, cores // jobs)), done,
                                  started, stop_early)
    for trial in trials:  # a trial still "running" here was stopped: say what its folder holds
        if folder.outcomes[trial.number].status == "running":
            folder.outcomes[trial.number] = read_outcome(folder.run_dir(trial))
    folder.write_csv()
    show_table(folder, metric)
    if not completed:
        print(f"interrupted: the stopped trials wrote their checkpoints. Continue with the same command "
              f"(numpyml sweep ... --output {folder.path}).", flush=True)
        return 130
    return 1 if any(o.status == "failed" for o in folder.outcomes.values()) else 0


def ranked(folder: SweepFolder, metric: str) -> list[Trial]:
    """The trials, best ``metric`` first; trials without it last, by number."""
    higher = METRICS[metric]

    def key(trial: Trial) -> tuple:
        value = folder.outcomes[trial.number].value(metric)
        return (value is None, 0.0 if value is None else (-value if higher else value), trial.number)

    return sorted(folder.trials, key=key)


def show_table(folder: SweepFolder, metric: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    order = ranked(folder, metric)
    short = labels(folder.keys)
    table = Table(title=f"sweep {escape(str(folder.path))}: {len(order)} trials, by {metric}")
    table.add_column("TRIAL", justify="right")
    for key in folder.keys:
        table.add_column(escape(short[key]).upper(), justify="right")
    table.add_column("STATUS")
    for title in ("VAL ACC", "TEST ACC", "TIME"):
        table.add_column(title, justify="right")

    def percent(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.2f}%"

    best = order[0] if order and folder.outcomes[order[0].number].value(metric) is not None else None
    for trial in order:
        outcome = folder.outcomes[trial.number]
        row = [str(trial.number), *(escape(value_text(trial.values[k])) for k in folder.keys), outcome.status,
               percent(outcome.validation_accuracy), percent(outcome.test_accuracy),
               "—" if outcome.seconds is None else f"{outcome.seconds:.1f}s"]
        table.add_row(*row, style="bold green" if trial is best else None)
    console = Console()
    console.print(table)
    if best is not None:
        value = folder.outcomes[best.number].value(metric)
        shown = f"{value:.1f}s" if metric == "seconds" else f"{100 * value:.2f}%"
        console.print(f"best: trial {best.number} ({escape(_values(best))}), {metric} {shown}: "
                      f"{escape(str(folder.run_dir(best)))}", highlight=False)
