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
# run
# --------------------------------------------------------------------------------------------
def _provenance(manager: Any, spec: Any) -> dict[str, Any]:
    from . import __version__

    used: dict[str, str] = {}
    components = [spec.dataset, *spec.layers, spec.cost, spec.optimizer, spec.strategy, spec.schedule,
                  *spec.transforms, *spec.callbacks]
    for component in components:
        if component is None:
            continue
        entry = manager.registry.get(component.kind, component.type)
        used[entry.distribution] = entry.version
    return {"numpyml": __version__, "python": sys.version.split()[0], "distributions": used}


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
) -> None:
    """Train the network an experiment file describes and write a run folder."""
    if resume and output is None:
        _err("--resume needs --output RUN_DIR: the run folder to continue (or use 'numpyml resume RUN_DIR').")
        raise typer.Exit(2)
    with _user_errors():
        summary, run_dir = run_experiment(experiment, data_dir=data_dir, output=output, epochs=epochs,
                                          seed=seed, quiet=quiet, resume=resume, allow_changes=allow_changes)
    _print_done(summary, run_dir, quiet)


@app.command("resume")
def resume_run(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'numpyml run'."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    allow_changes: bool = typer.Option(False, "--allow-changes", help="Accept a config.toml edited since the checkpoint."),
) -> None:
    """Continue an interrupted run from its last checkpoint."""
    with _user_errors():
        config = run_dir / "config.toml"
        if not config.is_file():
            raise UserError(f"{run_dir}: not a run folder (it has no config.toml).")
        summary, run_dir = run_experiment(config, data_dir=data_dir, output=run_dir, quiet=quiet, resume=True,
                                          allow_changes=allow_changes)
    _print_done(summary, run_dir, quiet)


def _print_done(summary: dict[str, Any], run_dir: Path, quiet: bool) -> None:
    if quiet:
        return
    figures = ", ".join(
        f"{key} {100 * value:.2f}%" for key, value in summary.items()
        if key.endswith("_accuracy") and not key.startswith("best_") and isinstance(value, float)
    )
    stop = f" ({summary['stop_reason']})" if summary.get("stop_reason") else ""
    print(f"done in {summary['seconds']:.1f}s: {figures}{stop}. Run folder: {run_dir}")


def _config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


@contextlib.contextmanager
def _interrupt_handler(run: Any) -> Iterator[None]:
    """First Ctrl-C: stop at the next batch boundary (checkpoint, exit 130). Second: abort now."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if run.control.interrupt_requested:
            raise KeyboardInterrupt
        run.control.interrupt_requested = True
        print("\nnumpyml: stopping after this batch to write a checkpoint (Ctrl-C again to abort at once)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _make_callbacks(spec: Any, manager: Any, defaults: list[str]) -> list[Any]:
    """The run's callbacks: the ``defaults`` the experiment does not list itself, then its own."""
    from .errors import ConfigError

    callbacks: list[Any] = []
    chosen = {c.type for c in spec.callbacks}
    for name in defaults:
        if name in chosen:
            continue
        if ("callback", name) in manager.registry.components:
            callbacks.append(manager.create("callback", name))
        else:
            print(f"warning: the default callback '{name}' is not installed (plugin disabled?)", file=sys.stderr)
    for component in spec.callbacks:
        try:
            callbacks.append(manager.create("callback", component.type, **dict(component.params)))
        except ConfigError as exc:
            raise ConfigError(f"{component.where}: {exc}") from None
    return callbacks


def _metrics_files(spec: Any) -> list[str]:
    names = [str(c.params.get("filename", "metrics.csv")) for c in spec.callbacks if c.type == "metrics_csv"]
    return names or ["metrics.csv"]


def _write_failure(exc: OSError, run_dir: Path) -> str:
    """The message for a file that could not be written during a run (disk full, read-only, ...)."""
    last = run_dir / "checkpoints" / "last.safetensors"
    what = f"{exc.filename}: " if exc.filename else ""
    then = (f"continue with: numpyml resume {run_dir} (it goes on from {last})" if last.is_file()
            else f"no checkpoint was written yet; start again with another --output")
    return (f"{what}{exc.strerror or exc}. The run in {run_dir} stopped; every file already there is complete "
            f"(numpyml writes each file under a temporary name, then renames it). Free space (or fix the file), then {then}.")


def run_experiment(experiment: Path, data_dir: str | None = None, output: Path | None = None,
                   epochs: int | None = None, seed: int | None = None, quiet: bool = True,
                   extra_callbacks: list[Any] | None = None, resume: bool = False,
                   allow_changes: bool = False) -> tuple[dict[str, Any], Path]:
    """What ``numpyml run`` (and ``resume``) does, callable from Python. Returns (summary, run folder).

    Everything that can be checked without data is checked before the run folder is touched. The folder
    is then claimed (:mod:`numpyml_core.runfolder`): created exclusively for a new run, locked for the run's
    whole life, so no other run or resume can write there meanwhile; a run that fails before writing
    anything leaves no folder behind."""
    from . import runfolder
    from .checkpoint import config_as_json, read_checkpoint, restore
    from .config import dumps_toml, load_experiment, parse_experiment, read_toml
    from .data import data_dir_from_env
    from .io import atomic_write_text
    from .serialization import save_model
    from .trainer import TrainingInterrupted, prepare, register_callbacks, train, unregister_callbacks

    manager = _manager()
    overrides: dict[str, Any] = {}
    if epochs is not None:
        if epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {epochs}.")
        overrides["training.epochs"] = epochs
    if seed is not None:
        if seed < 0:
            raise UserError(f"--seed must be a non-negative integer, got {seed}.")
        overrides["seed"] = seed
    spec = load_experiment(experiment, manager.registry, overrides)
    callbacks = _make_callbacks(spec, manager, ([] if quiet else ["progress"]) + ["metrics_csv", "checkpoint"])
    callbacks += extra_callbacks or []
    config = spec.to_dict()
    config["provenance"] = _provenance(manager, spec)
    try:
        config_text = f"# resolved experiment of {spec.source}\n" + dumps_toml(config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{experiment}: the resolved experiment cannot be written as TOML ({exc}).") from None

    checkpoint = None
    if resume:
        assert output is not None
        run_dir = Path(output)
        saved_config = run_dir / "config.toml"
        if not saved_config.is_file():
            raise UserError(f"{run_dir}: not a run folder to resume (it has no config.toml).")
        claim = runfolder.lock_existing(run_dir)
    elif output is not None:
        claim = runfolder.claim_new(output)
        run_dir = claim.path
    else:
        claim = runfolder.claim_default("runs", spec.name)
        run_dir = claim.path
    with claim:
        if resume:
            saved = parse_experiment(read_toml(saved_config), str(saved_config), manager.registry).to_dict()
            changed = _config_differences(saved, spec.to_dict())
            last = runfolder.resume_point(run_dir, _metrics_files(spec))
            if last is not None:
                checkpoint = read_checkpoint(last)
                changed += [f"{key} (since the checkpoint)"
                            for key in _config_differences(checkpoint[1]["config"], config_as_json(spec.to_dict()))
                            if key not in changed]
            if changed and not allow_changes:
                raise UserError(
                    f"{experiment}: differs from the run in {run_dir} in {', '.join(changed)}; resuming would not "
                    "continue the same experiment. Pass --allow-changes to resume anyway, or start a new run."
                )
            if checkpoint is None:  # said even with --quiet: a restart is never silent
                print(f"{run_dir}: no checkpoint yet and nothing trained; starting the run from the beginning.",
                      file=sys.stderr)
        data_dir = data_dir or data_dir_from_env()

        run = prepare(spec, manager, data_dir=data_dir, output_dir=run_dir)

        if checkpoint is None or allow_changes:
            try:
                atomic_write_text(run_dir / "config.toml", config_text)
            except OSError as exc:
                raise UserError(f"--output {run_dir}: cannot write the run folder: "
                                f"{exc.filename or run_dir}: {exc.strerror or exc}.") from None

        register_callbacks(run, callbacks)
        try:
            if checkpoint is not None:
                restore(run, *checkpoint, source=str(run_dir / "checkpoints" / "last.safetensors"))
            with _interrupt_handler(run):
                summary = train(run)
        except KeyboardInterrupt as exc:
            where = (f"in epoch {exc.epoch} after batch {exc.batch}" if isinstance(exc, TrainingInterrupted) and exc.batch
                     else f"after epoch {run.epoch}")
            saved_note = (f"the last checkpoint is in {run_dir / 'checkpoints'}"
                          if (run_dir / "checkpoints" / "last.safetensors").exists() else "no checkpoint was written")
            _err(f"interrupted {where}; {saved_note}. Continue with: numpyml resume {run_dir}")
            raise typer.Exit(130) from None
        except OSError as exc:
            raise UserError(_write_failure(exc, run_dir)) from None
        finally:
            unregister_callbacks(run)

        architecture = {
            "input_shape": list(run.model.input_shape),
            "layers": run.model.configs,
            "cost": spec.cost.as_table(),
            "num_classes": getattr(run.dataset, "num_classes", None),
            "class_names": list(getattr(run.dataset, "class_names", []) or []),
            "dataset": spec.dataset.type,
        }
        try:
            save_model(run_dir / "model.safetensors", run.model, architecture)
            atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            raise UserError(_write_failure(exc, run_dir)) from None
    return summary, run_dir


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
def validate(experiment: Path = typer.Argument(..., help="The experiment file (.toml).")) -> None:
    """Check an experiment file (components, parameters, shapes) without training."""
    from .config import load_experiment
    from .trainer import check

    with _user_errors():
        manager = _manager()
        spec = load_experiment(experiment, manager.registry)
        model = check(spec, manager)
        _make_callbacks(spec, manager, [])  # what their constructors refuse (a metrics file named config.toml)
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
    from .data import data_dir_from_env
    from .serialization import load_model
    from .trainer import evaluate

    with _user_errors():
        manager = _manager()
        model, arch = load_model(model_path, manager)
        name = dataset or arch.get("dataset")
        if not name:
            raise UserError(f"{model_path}: the model does not say which dataset it was trained on; pass --dataset.")
        data = manager.create("dataset", name)
        if tuple(data.input_shape) != tuple(model.input_shape):
            raise UserError(f"--dataset {name}: its samples have shape {tuple(data.input_shape)} but the model "
                            f"takes {tuple(model.input_shape)}.")
        splits = data.load(data_dir or data_dir_from_env())
        if split not in splits:
            raise UserError(f"--split {split}: dataset '{name}' has the splits {', '.join(sorted(splits))}.")
        if len(splits[split]) == 0:
            raise UserError(f"--split {split}: dataset '{name}' returned an empty '{split}' split (0 samples): "
                            "nothing to evaluate. Check its data files.")
        cost_table = dict(arch.get("cost") or {"type": "cross_entropy"})
        cost = manager.create("cost", cost_table.pop("type"), **cost_table)
        result = evaluate(model, cost, splits[split])
    result = {"model": str(model_path), "dataset": name, "split": split, "samples": len(splits[split]), **result}
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{name} {split} ({result['samples']:,} samples): loss {result['loss']:.4f}, "
              f"accuracy {100 * result['accuracy']:.2f}%")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
