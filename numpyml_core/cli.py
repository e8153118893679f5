"""The ``numpyml`` command line: parses arguments and calls the API (numpyml_core.api). A user mistake prints one
paragraph to stderr and exits with status 2; an interrupted run exits with 130."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .commands import CommandGroup, error, messages_to_stderr, plugin_manager, user_errors

app = typer.Typer(name="numpyml", help="Train and evaluate neural networks described in TOML files; every component "
                  "is a plugin.", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=CommandGroup)  # CommandGroup adds the plugins' commands (hook numpyml_register_commands)

EXPERIMENT = typer.Argument(..., help="The experiment file (.toml).")
DATA_DIR = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress display.")
SET = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a key of the experiment (repeatable): a dotted "
                   "key, a number indexing a list from 0, and a TOML value (a bare word is a string), e.g. --set "
                   "optimizer.learning_rate=0.3 --set model.layers.1.units=256.")
PRINT_CONFIG = typer.Option(False, "--print-config", help="Print the resolved experiment (defaults filled in, "
                            "overrides applied) as TOML and train nothing.")


@app.callback()
def _main(
    disable_plugin: list[str] = typer.Option([], "--disable-plugin", metavar="NAME", is_eager=True, help="Do not load "
                                             "the plugin with this entry-point name (repeatable); its components and "
                                             "commands are gone."),
) -> None:
    del disable_plugin  # read by CommandGroup, which loads the plugins before their commands


def _run_and_report(quiet: bool, call: Any) -> None:
    """Call ``call()`` (an API run), its warnings and notices on stderr; Ctrl-C exits 130 with the resume hint."""
    from .api import TrainingInterrupted

    with user_errors(), messages_to_stderr():
        try:
            result = call()
        except TrainingInterrupted as exc:
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
    from . import api
    from .config import dumps_toml

    with user_errors():
        exp = api.Experiment.load(experiment, {**api.parse_overrides(sets), **overrides}, plugin_manager())
    if print_config:
        print(dumps_toml(exp.to_dict()), end="")
        raise typer.Exit(0)
    return exp


@app.command()
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
    from . import api

    given = {"training.epochs": epochs, "seed": seed}
    exp = _load(experiment, sets, print_config, **{key: value for key, value in given.items() if value is not None})
    _run_and_report(quiet, lambda: api.run(exp, output=output, data_dir=data_dir, progress=not quiet, resume=resume,
                                           allow_changes=allow_changes))


@app.command("resume")
def resume_run(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'numpyml run'."),
    data_dir: Optional[str] = DATA_DIR,
    quiet: bool = QUIET,
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Accept a config.toml edited since the "
                                       "checkpoint, or --set."),
    sets: list[str] = SET,
) -> None:
    """Continue an interrupted run from its last checkpoint."""
    from . import api

    plugin_manager()  # --disable-plugin applies
    with user_errors():
        overrides = api.parse_overrides(sets)
    _run_and_report(quiet, lambda: api.resume(run_dir, data_dir=data_dir, progress=not quiet,
                                              allow_changes=allow_changes, overrides=overrides))


@app.command()
def validate(experiment: Path = EXPERIMENT, sets: list[str] = SET, print_config: bool = PRINT_CONFIG) -> None:
    """Check an experiment file (components, parameters, shapes) without training."""
    exp = _load(experiment, sets, print_config)
    with user_errors():
        model = exp.validate()
    spec = exp.spec
    print(f"{experiment}: valid. {len(spec.layers)} layers, {model.count_params():,} parameters, "
          f"output {model.output_shape}; {spec.training.epochs} epochs of batch {spec.training.batch_size}.")


@app.command("eval")
def evaluate_model(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model.safetensors written by 'numpyml run'."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset name (default: the one it was trained on)."),
    split: str = typer.Option("test", "--split", help="Which split to evaluate."),
    data_dir: Optional[str] = DATA_DIR,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Loss and accuracy of a saved model on a dataset split."""
    from . import api

    with user_errors():
        manager = plugin_manager()
        result = api.evaluate(api.load_model(model_path, manager), dataset=dataset, split=split, data_dir=data_dir,
                              manager=manager)
    if as_json:
        print(json.dumps({"model": str(model_path), **result}, indent=2))
    else:
        print(f"{result['dataset']} {split} ({result['samples']:,} samples): loss {result['loss']:.4f}, "
              f"accuracy {100 * result['accuracy']:.2f}%")


def main() -> None:
    """The ``numpyml`` console script."""
    app()


if __name__ == "__main__":
    main()
