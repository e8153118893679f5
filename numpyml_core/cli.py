"""The ``numpyml`` command line.

User mistakes (a bad experiment file, an unknown component, a missing data file) print one
paragraph to stderr and exit with status 2; an interrupted run exits with 130.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from .errors import PluginError, UserError

app = typer.Typer(
    name="numpyml",
    help="Train and evaluate neural networks described in TOML files; every component is a plugin.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_state: dict[str, Any] = {"disable": []}


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except UserError as exc:
        _err(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except PluginError as exc:
        _err(str(exc))
        raise typer.Exit(1) from None


def _manager():
    from .plugins import PluginManager, get_plugin_manager, set_plugin_manager

    if _state["disable"]:
        manager = PluginManager(disable=_state["disable"])
        manager.load_entry_points()
        set_plugin_manager(manager)
        return manager
    return get_plugin_manager()


@app.callback()
def _main(
    disable_plugin: list[str] = typer.Option(
        [], "--disable-plugin", help="Do not load the plugin with this entry-point name (repeatable).",
        metavar="NAME",
    ),
) -> None:
    _state["disable"] = list(disable_plugin)


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def _default_run_dir(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path("runs") / f"{name}-{stamp}-{suffix}"
    return path


def _check_output_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UserError(f"--output {path}: exists and is not a folder; choose another path.")
    if path.is_dir() and any(path.iterdir()):
        raise UserError(
            f"--output {path}: the folder exists and is not empty; numpyml never overwrites a run. "
            "Choose a new folder or remove this one."
        )
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--output {path}: cannot create the run folder: {probe} is not writable.")


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
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override [training] epochs."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the experiment's seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Train the network an experiment file describes and write a run folder."""
    with _user_errors():
        summary, run_dir = run_experiment(experiment, data_dir=data_dir, output=output, epochs=epochs,
                                          seed=seed, quiet=quiet)
    if not quiet:
        figures = ", ".join(
            f"{key} {100 * value:.2f}%" for key, value in summary.items()
            if key.endswith("_accuracy") and not key.startswith("best_") and isinstance(value, float)
        )
        print(f"done in {summary['seconds']:.1f}s: {figures}. Run folder: {run_dir}")


def run_experiment(experiment: Path, data_dir: str | None = None, output: Path | None = None,
                   epochs: int | None = None, seed: int | None = None, quiet: bool = True,
                   extra_callbacks: list[Any] | None = None) -> tuple[dict[str, Any], Path]:
    """What ``numpyml run`` does, callable from Python. Returns (summary, run folder)."""
    from .config import dumps_toml, load_experiment
    from .data import data_dir_from_env
    from .errors import ConfigError
    from .io import atomic_write_text
    from .serialization import save_model
    from .trainer import prepare, register_callbacks, train, unregister_callbacks

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
    run_dir = Path(output) if output is not None else _default_run_dir(spec.name)
    _check_output_dir(run_dir)
    data_dir = data_dir or data_dir_from_env()

    run = prepare(spec, manager, data_dir=data_dir, output_dir=run_dir)

    callbacks: list[Any] = []
    defaults = [] if quiet else ["progress"]
    defaults.append("metrics_csv")
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
    callbacks += extra_callbacks or []

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        config = spec.to_dict()
        config["provenance"] = _provenance(manager, spec)
        atomic_write_text(run_dir / "config.toml", f"# resolved experiment of {spec.source}\n" + dumps_toml(config))
    except OSError as exc:
        raise UserError(f"--output {run_dir}: cannot write the run folder ({exc.strerror}).") from None

    register_callbacks(run, callbacks)
    try:
        summary = train(run)
    except KeyboardInterrupt:
        _err(f"interrupted after epoch {run.epoch}; the run folder {run_dir} holds the completed epochs.")
        raise typer.Exit(130) from None
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
    save_model(run_dir / "model.safetensors", run.model, architecture)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
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
    from .errors import did_you_mean

    with _user_errors():
        manager = _manager()
        components = manager.registry.all()
        if kind is not None:
            kinds = sorted({c.kind for c in components})
            if kind not in kinds:
                raise UserError(f"--kind: no installed component of kind '{kind}'{did_you_mean(kind, kinds)}; "
                                f"installed kinds: {', '.join(kinds)}.")
            components = [c for c in components if c.kind == kind]
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
    from rich.table import Table

    console = Console()
    table = Table(title=f"numpyml components ({len(components)})")
    for column in ("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "VERSION"):
        table.add_column(column)
    for c in components:
        table.add_row(c.kind, c.name, c.plugin, c.distribution, c.version)
    console.print(table)
    if manager.failed:
        failed = Table(title="plugins that failed to load", title_style="bold red")
        for column in ("PLUGIN", "DISTRIBUTION", "ERROR"):
            failed.add_column(column)
        for f in manager.failed:
            failed.add_row(f.plugin, f.distribution, f.error)
        console.print(failed)


@app.command()
def info(kind: str = typer.Argument(..., help="Component kind."), name: str = typer.Argument(..., help="Component name.")) -> None:
    """A component's parameters (name, type, default) and documentation."""
    from rich.console import Console
    from rich.table import Table

    from .config import describe_params

    with _user_errors():
        component = _manager().registry.get(kind, name)
    console = Console()
    console.print(f"[bold]{kind} {name}[/bold]  (plugin {component.plugin}, {component.distribution} {component.version})")
    table = Table()
    for column in ("PARAMETER", "TYPE", "DEFAULT"):
        table.add_column(column)
    for row in describe_params(component.factory):
        table.add_row(*row)
    console.print(table)
    if component.doc:
        console.print(component.doc, markup=False, highlight=False, soft_wrap=True)


@app.command()
def validate(experiment: Path = typer.Argument(..., help="The experiment file (.toml).")) -> None:
    """Check an experiment file (components, parameters, shapes) without training."""
    from .config import load_experiment
    from .trainer import check

    with _user_errors():
        manager = _manager()
        spec = load_experiment(experiment, manager.registry)
        model = check(spec, manager)
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
        cost_table = dict(arch.get("cost") or {"type": "cross_entropy"})
        cost = manager.create("cost", cost_table.pop("type"), **cost_table)
        result = evaluate(model, cost, splits[split])
    result = {"model": str(model_path), "dataset": name, "split": split, "samples": len(splits[split]), **result}
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{name} {split} ({result['samples']:,} samples): loss {result['loss']:.4f}, "
              f"accuracy {100 * result['accuracy']:.2f}%")


from . import cli_plugins as _cli_plugins  # noqa: E402 - plugin-author commands live there

_cli_plugins.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
