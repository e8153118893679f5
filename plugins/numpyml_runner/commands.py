"""The ``run``, ``resume``, ``validate`` and ``eval`` commands: parse arguments, call the Python API, print. A user
mistake prints one paragraph to stderr and exits with status 2; an interrupted run exits with 130."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import typer

import numpyml_core as nm
from numpyml_core.plugin_api import dumps_toml, error, messages_to_stderr, plugin_manager, user_errors

EXPERIMENT = typer.Argument(..., help="The experiment file (.toml).")
DATA_DIR = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress display.")
SET = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a key of the experiment (repeatable): a dotted "
                   "key, a number indexing a list from 0, and a TOML value (a bare word is a string), e.g. --set "
                   "optimizer.learning_rate=0.3 --set model.layers.1.units=256.")
PRINT_CONFIG = typer.Option(False, "--print-config", help="Print the resolved experiment (defaults filled in, "
                            "overrides applied) as TOML and train nothing.")


def _run_and_report(quiet: bool, call: Callable[[], Any]) -> None:
    """Call ``call()`` (an API run), its warnings and notices on stderr; Ctrl-C exits 130 with the resume hint."""
    with user_errors(), messages_to_stderr():
        try:
            result = call()
        except nm.TrainingInterrupted as exc:
            error(str(exc))
            raise typer.Exit(130) from None
    if not quiet:
        summary = result.summary
        figures = ", ".join(f"{key} {100 * value:.2f}%" for key, value in summary.items() if key.endswith("_accuracy")
                            and not key.startswith("best_") and isinstance(value, float))
        stop = f" ({summary['stop_reason']})" if summary.get("stop_reason") else ""
        print(f"done in {summary['seconds']:.1f}s: {figures}{stop}. Run folder: {result.run_dir}")


def _load(experiment: Path, sets: list[str], print_config: bool, **overrides: Any) -> Any:
    """The experiment with its ``--set`` items and ``overrides``; with ``--print-config``, print it and exit 0."""
    with user_errors():
        exp = nm.Experiment.load(experiment, {**nm.parse_overrides(sets), **overrides}, plugin_manager())
    if print_config:
        print(dumps_toml(exp.to_dict()), end="")
        raise typer.Exit(0)
    return exp


def run(
    experiment: Path = EXPERIMENT,
    data_dir: Optional[str] = DATA_DIR,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Exactly this run folder (default "
                                          "runs/<name>-<time>)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override \\[training] epochs (a cosine or one_cycle "
                                         "schedule is rescaled to span them; step_decay keeps its milestones)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the experiment's seed."),
    quiet: bool = QUIET,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="With --resume: accept an experiment that "
                                       "differs from the run's."),
    sets: list[str] = SET,
    print_config: bool = PRINT_CONFIG,
) -> None:
    """Train the network an experiment file describes and write a run folder."""
    given = {"training.epochs": epochs, "seed": seed}
    exp = _load(experiment, sets, print_config, **{key: value for key, value in given.items() if value is not None})
    _run_and_report(quiet, lambda: nm.run(exp, output=output, data_dir=data_dir, progress=not quiet, resume=resume,
                                          allow_changes=allow_changes))


def resume(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'numpyml run'."),
    data_dir: Optional[str] = DATA_DIR,
    quiet: bool = QUIET,
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Accept a config.toml edited since the "
                                       "checkpoint, or --set."),
    sets: list[str] = SET,
) -> None:
    """Continue an interrupted run from its last checkpoint."""
    plugin_manager()  # --disable-plugin applies
    with user_errors():
        overrides = nm.parse_overrides(sets)
    _run_and_report(quiet, lambda: nm.resume(run_dir, data_dir=data_dir, progress=not quiet,
                                             allow_changes=allow_changes, overrides=overrides))


def validate(experiment: Path = EXPERIMENT, sets: list[str] = SET, print_config: bool = PRINT_CONFIG) -> None:
    """Check an experiment file (components, parameters, shapes) without training."""
    exp = _load(experiment, sets, print_config)
    with user_errors():
        model = exp.validate()
    spec = exp.spec
    print(f"{experiment}: valid. {len(spec.layers)} layers, {model.count_params():,} parameters, "
          f"output {model.output_shape}; {spec.training.epochs} epochs of batch {spec.training.batch_size}.")


def evaluate(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model.safetensors written by 'numpyml run'."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset name (default: the one it was trained on)."),
    split: str = typer.Option("test", "--split", help="Which split to evaluate."),
    data_dir: Optional[str] = DATA_DIR,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Loss and accuracy of a saved model on a dataset split."""
    with user_errors():
        manager = plugin_manager()
        result = nm.evaluate(nm.load_model(model_path, manager), dataset=dataset, split=split, data_dir=data_dir,
                             manager=manager)
    if as_json:
        print(json.dumps({"model": str(model_path), **result}, indent=2))
    else:
        print(f"{result['dataset']} {split} ({result['samples']:,} samples): loss {result['loss']:.4f}, "
              f"accuracy {100 * result['accuracy']:.2f}%")
