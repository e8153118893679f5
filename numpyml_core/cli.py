"""The ``numpyml`` command line.

User mistakes (a bad experiment file, an unknown component, a missing data file) print one
paragraph to stderr and exit with status 2; an interrupted run exits with 130.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from .commands import CommandGroup
from .commands import components_of_kind as _components_of_kind
from .commands import error as _err
from .commands import plugin_manager as _manager
from .commands import user_errors as _user_errors
from .errors import UserError

app = typer.Typer(
    name="numpyml",
    help="Train and evaluate neural networks described in TOML files; every component is a plugin.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=CommandGroup,  # adds the plugins' commands (hook numpyml_register_commands)
)


@app.callback()
def _main(
    disable_plugin: list[str] = typer.Option(
        [], "--disable-plugin", help="Do not load the plugin with this entry-point name (repeatable); its "
        "components and commands are gone.", metavar="NAME", is_eager=True,  # read before plugin commands load
    ),
) -> None:
    del disable_plugin  # read by numpyml_core.commands.CommandGroup, which loads the plugins


# --------------------------------------------------------------------------------------------
# run / resume: arguments to numpyml_core.api
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _messages_to_stderr() -> Iterator[None]:
    """While a command runs, warnings and the ``numpyml`` logger's notices (what the API says instead
    of printing) are one line each on stderr: ``warning: ...`` and the notice itself."""
    import logging
    import warnings

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("numpyml")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


def _run_and_report(quiet: bool, call: Any) -> None:
    """Call ``call()`` (an API run) under :func:`_user_errors`, its warnings and notices on stderr;
    Ctrl-C exits 130 with the resume hint."""
    from .api import TrainingInterrupted

    with _user_errors(), _messages_to_stderr():
        try:
            result = call()
        except TrainingInterrupted as exc:
            _err(str(exc))
            raise typer.Exit(130) from None
    if quiet:
        return
    summary = result.summary
    figures = ", ".join(
        f"{key} {100 * value:.2f}%" for key, value in summary.items()
        if key.endswith("_accuracy") and not key.startswith("best_") and isinstance(value, float)
    )
    stop = f" ({summary['stop_reason']})" if summary.get("stop_reason") else ""
    print(f"done in {summary['seconds']:.1f}s: {figures}{stop}. Run folder: {result.run_dir}")


_SET = typer.Option([], "--set", metavar="KEY=VALUE", help="Override a key of the experiment (repeatable): a dotted "
                    "key, a number indexing a list from 0, and a TOML value (a bare word is a string), e.g. --set "
                    "optimizer.learning_rate=0.3 --set model.layers.1.units=256.")
_PRINT_CONFIG = typer.Option(False, "--print-config", help="Print the resolved experiment (defaults filled in, "
                             "overrides applied) as TOML and train nothing.")


def _print_config(experiment: Path, overrides: dict[str, Any]) -> None:
    """Print the resolved experiment as TOML: what ``--print-config`` does."""
    from . import api
    from .config import dumps_toml

    with _user_errors():
        print(dumps_toml(api.Experiment.load(experiment, overrides, _manager()).to_dict()), end="")


@app.command()
def run(
    experiment: Path = typer.Argument(..., help="The experiment file (.toml)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Exactly this run folder (default runs/<name>-<time>)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override [training] epochs. A cosine or one_cycle schedule is rescaled to span the N epochs "
                                                              "(a short run is a whole, compressed schedule, not the first N epochs of the long one); "
                                                              "step_decay keeps its epoch milestones."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the experiment's seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="With --resume: accept an experiment that differs from the run's."),
    sets: list[str] = _SET,
    print_config: bool = _PRINT_CONFIG,
) -> None:
    """Train the network an experiment file describes and write a run folder."""
    from . import api

    if resume and output is None:
        _err("--resume needs --output RUN_DIR: the run folder to continue (or use 'numpyml resume RUN_DIR').")
        raise typer.Exit(2)
    with _user_errors():
        overrides = api.parse_overrides(sets)
    if epochs is not None:
        if epochs < 1:
            _err(f"--epochs must be at least 1, got {epochs}.")
            raise typer.Exit(2)
        overrides["training.epochs"] = epochs
    if seed is not None:
        if seed < 0:
            _err(f"--seed must be a non-negative integer, got {seed}.")
            raise typer.Exit(2)
        overrides["seed"] = seed
    if print_config:
        _print_config(experiment, overrides)
        return
    _run_and_report(quiet, lambda: api.run(api.Experiment.load(experiment, overrides, _manager()), output=output,
                                           data_dir=data_dir, progress=not quiet, resume=resume,
                                           allow_changes=allow_changes))


@app.command("resume")
def resume_run(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'numpyml run'."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Accept a config.toml edited since the checkpoint, or --set."),
    sets: list[str] = _SET,
) -> None:
    """Continue an interrupted run from its last checkpoint."""
    from . import api

    _manager()  # --disable-plugin applies
    with _user_errors():
        overrides = api.parse_overrides(sets)
    _run_and_report(quiet, lambda: api.resume(run_dir, data_dir=data_dir, progress=not quiet,
                                              allow_changes=allow_changes, overrides=overrides))


# --------------------------------------------------------------------------------------------
# list / info / validate / eval
# --------------------------------------------------------------------------------------------
@app.command("list")
def list_components(
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (layer, optimizer, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every installed component, with the plugin and distribution that provides it."""
    with _user_errors():
        manager = _manager()
        components = manager.registry.all()
        if kind is not None:
            components = _components_of_kind(components, kind, prefix="--kind: ")
    if as_json:
        print(json.dumps({
            "components": [
                {"kind": c.kind, "name": c.name, "plugin": c.plugin, "distribution": c.distribution,
                 "version": c.version} for c in components
            ],
            "failed": [{"plugin": f.plugin, "distribution": f.distribution, "error": f.error} for f in manager.failed],
        }, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    # Names are never cut: each stays on one line when the terminal leaves the other columns room
    # (about 40 characters), and is folded onto several lines otherwise; no column ends in "…".
    # Plugin text is escaped: "numpyml[ray]" is not rich markup.
    widest = max((len(c.name) for c in components), default=4)
    table = Table(title=f"numpyml components ({len(components)})")
    for column in ("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "VERSION"):
        table.add_column(column, overflow="fold", no_wrap=column == "NAME" and widest + 40 <= console.width)
    for c in components:
        table.add_row(*(escape(text) for text in (c.kind, c.name, c.plugin, c.distribution, c.version)))
    console.print(table)
    if manager.failed:
        failed = Table(title="plugins that failed to load", title_style="bold red")
        for column in ("PLUGIN", "DISTRIBUTION", "ERROR"):
            failed.add_column(column, overflow="fold")
        for f in manager.failed:
            failed.add_row(escape(f.plugin), escape(f.distribution), escape(f.error))
        console.print(failed)


@app.command()
def info(kind: str = typer.Argument(..., help="Component kind."), name: str = typer.Argument(..., help="Component name.")) -> None:
    """A component's parameters (name, type, default) and documentation.

    Exit status 2 for an unknown KIND or NAME, 1 when the component's plugin module cannot be
    imported (as for 'numpyml validate' and 'numpyml run': one line naming the plugin).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .config import describe_params

    with _user_errors():
        component = _manager().registry.get(kind, name)
        factory = component.factory  # a lazy reference is imported here: its failure is one line
        rows = describe_params(factory)
        doc = component.doc
    console = Console()
    console.print(f"[bold]{escape(kind)} {escape(name)}[/bold]  (plugin {escape(component.plugin)}, "
                  f"{escape(component.distribution)} {escape(component.version)})")
    table = Table()
    for column in ("PARAMETER", "TYPE", "DEFAULT"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    console.print(table)
    if doc:
        console.print(doc, markup=False, highlight=False, soft_wrap=True)


@app.command()
def validate(experiment: Path = typer.Argument(..., help="The experiment file (.toml)."), sets: list[str] = _SET,
             print_config: bool = _PRINT_CONFIG) -> None:
    """Check an experiment file (components, parameters, shapes) without training."""
    from . import api

    with _user_errors():
        overrides = api.parse_overrides(sets)
    if print_config:
        _print_config(experiment, overrides)
        return
    with _user_errors():
        exp = api.Experiment.load(experiment, overrides, _manager())
        model = exp.validate()
    spec = exp.spec
    print(f"{experiment}: valid. {len(spec.layers)} layers, {model.count_params():,} parameters, "
          f"output {model.output_shape}; {spec.training.epochs} epochs of batch {spec.training.batch_size}.")


@app.command("eval")
def evaluate_model(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model.safetensors written by 'numpyml run'."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset name (default: the one it was trained on)."),
    split: str = typer.Option("test", "--split", help="Which split to evaluate."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Loss and accuracy of a saved model on a dataset split."""
    from . import api

    with _user_errors():
        manager = _manager()
        result = api.evaluate(api.load_model(model_path, manager), dataset=dataset, split=split, data_dir=data_dir,
                              manager=manager)
    result = {"model": str(model_path), **result}
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['dataset']} {split} ({result['samples']:,} samples): loss {result['loss']:.4f}, "
              f"accuracy {100 * result['accuracy']:.2f}%")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
