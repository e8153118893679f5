"""Commands for looking at runs: ``report``, ``runs``, ``show``, ``predict``.

Light to import: matplotlib and Pillow (the optional extra ``numpyml[plot]``) are imported only by
the command that needs them, and their absence is one clear message with exit status 2.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from numpyml_core import RunFolder, UserError
from numpyml_core.plugin_api import did_you_mean, plugin_manager, user_errors

#: ``numpyml runs --sort`` columns: name -> (key function, descending by default)
SORT_COLUMNS = ("date", "name", "epochs", "val", "test", "time")
_SORT_ALIASES = {"best_validation_accuracy": "val", "validation": "val", "validation_accuracy": "val",
                 "test_accuracy": "test", "seconds": "time", "started": "date"}


def report(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="One or more run folders (compared when "
                                          "several), or sweep folders (every trial compared, with the sweep's table)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The HTML file to write (default: RUN_DIR/report.html "
                                                                 "for one run or sweep, ./report.html for several)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder holding the data sets (else NUMPYML_DATA_DIR), "
                                                                    "for the test-split confusion matrix and images."),
) -> None:
    """A self-contained HTML report: curves, learning rate, epoch time, configs side by side, and the
    final model's confusion matrix and most confidently misclassified test images. For a sweep folder
    (written by 'numpyml sweep'): one curve per trial and a table of the swept values against the accuracies.

    Needs matplotlib: pip install 'numpyml\\[plot]'.
    """
    from numpyml_core.plugin_api import atomic_write_text, data_dir_from_env

    from . import require
    from .html import build_report
    from .rundata import load_run, load_sweep

    with user_errors():
        runs, sweeps = [], []
        for path in run_dirs:  # the arguments first: a wrong folder is named as such
            sweep = load_sweep(path) if path.is_dir() else None
            if sweep is None:
                runs.append(load_run(path))
            elif not sweep.runs:
                raise UserError(f"{path}: no trial of this sweep has results yet (its sweep.csv says where "
                                "each trial stands).")
            else:
                sweeps.append(sweep)
                runs += sweep.runs
        require("matplotlib")
        target = out if out is not None else (RunFolder(run_dirs[0]).report_path if len(run_dirs) == 1
                                              else Path(RunFolder.REPORT))
        result = build_report(runs, plugin_manager(), data_dir or data_dir_from_env(), sweeps)
        atomic_write_text(target, result.html)
    for message in result.warnings:
        print(f"warning: {message}", file=sys.stderr)
    print(f"report of {len(runs)} run{'s' if len(runs) != 1 else ''} written to {target}")


def runs(
    folder: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="The folder holding run folders (default runs/)."),
    sort: str = typer.Option("date", "--sort", "-s", help=f"Sort by: {', '.join(SORT_COLUMNS)} (accuracies and "
                                                          "epochs best first, time fastest first)."),
    reverse: bool = typer.Option(False, "--reverse", "-r", help="Reverse the order."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A table of the runs in DIR: name, date, epochs, best validation accuracy, test accuracy, time."""
    from .rundata import date, duration, find_runs, percent

    with user_errors():
        column = _SORT_ALIASES.get(sort, sort)
        if column not in SORT_COLUMNS:
            raise UserError(f"--sort {sort}: no such column{did_you_mean(sort, SORT_COLUMNS)}; "
                            f"choose one of {', '.join(SORT_COLUMNS)}.")
        found = find_runs(folder)
    missing_last = lambda value, descending: (value is None, -value if (descending and value is not None) else value)  # noqa: E731
    keys = {
        "date": lambda r: (r.started is None, r.started.timestamp() if r.started else 0.0, r.name),
        "name": lambda r: r.name,
        "epochs": lambda r: (-r.epochs, r.name),
        "val": lambda r: (missing_last(r.best_validation_accuracy, True), r.name),
        "test": lambda r: (missing_last(r.test_accuracy, True), r.name),
        "time": lambda r: (missing_last(r.seconds, False), r.name),
    }
    found.sort(key=keys[column], reverse=reverse)
    if as_json:
        print(json.dumps([
            {"name": r.name, "path": str(r.path), "date": date(r), "epochs": r.epochs, "finished": r.finished,
             "best_validation_accuracy": r.best_validation_accuracy, "test_accuracy": r.test_accuracy,
             "seconds": r.seconds} for r in found
        ], indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not found:
        console.print(f"no runs in {escape(str(folder))} (a run folder holds config.toml and metrics.csv).")
        return
    table = Table(title=f"runs in {escape(str(folder))} ({len(found)}), by {column}")
    table.add_column("NAME")
    table.add_column("DATE")
    for title in ("EPOCHS", "BEST VAL ACC", "TEST ACC", "TIME"):
        table.add_column(title, justify="right")
    best_test = max((r.test_accuracy for r in found if r.test_accuracy is not None), default=None)
    for r in found:
        test = percent(r.test_accuracy)
        if best_test is not None and r.test_accuracy == best_test and len(found) > 1:
            test = f"[bold green]{test}[/bold green]"
        name = escape(r.name) if r.finished else f"{escape(r.name)} [dim](unfinished)[/dim]"  # names are not markup
        table.add_row(name, date(r), str(r.epochs), percent(r.best_validation_accuracy), test, duration(r.seconds))
    console.print(table)


def show(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run folder.")) -> None:
    """One run's summary and a text sparkline of each curve (metrics.csv column) over the epochs."""
    from .rundata import date, duration, load_run, percent, sparkline

    with user_errors():
        run = load_run(run_dir)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    status = run.summary.get("stop_reason") or ("finished" if run.finished else "unfinished (no summary.json yet)")
    console.print(f"[bold]{escape(run.name)}[/bold]  {escape(str(run.path))}")  # names and values are not markup
    facts = [
        ("experiment", str(run.config.get("name", "—"))),
        ("dataset", run.dataset or "—"),
        ("started", date(run)),
        ("epochs", str(run.epochs)),
        ("status", str(status)),
        ("parameters", f"{run.summary['parameters']:,}" if isinstance(run.summary.get("parameters"), int) else "—"),
        ("time", duration(run.seconds)),
        ("best validation accuracy", percent(run.best_validation_accuracy)
         + (f" (epoch {run.summary['best_epoch']})" if run.summary.get("best_epoch") else "")),
        ("test accuracy", percent(run.test_accuracy)),
    ]
    for key, value in facts:
        console.print(f"  {key:<26}{escape(value)}", highlight=False)
    columns = [c for c in run.metrics if c != "epoch"]
    if not columns:
        console.print("  (metrics.csv has no rows yet)")
        return
    table = Table(title="curves over the epochs", title_justify="left")
    table.add_column("METRIC")
    table.add_column("CURVE")
    for title in ("FIRST", "LAST", "MIN", "MAX"):
        table.add_column(title, justify="right")
    for column in columns:
        values = [v for v in run.metrics[column] if math.isfinite(v)]
        if not values:
            continue
        fmt = _formatter(column)
        table.add_row(escape(column), sparkline(values, width=40), fmt(values[0]), fmt(values[-1]), fmt(min(values)),
                      fmt(max(values)))
    console.print(table)


def _formatter(column: str) -> Any:
    if column.endswith("_accuracy"):
        return lambda v: f"{100 * v:.2f}%"
    if column == "seconds":
        return lambda v: f"{v:.2f}s" if v < 10 else f"{v:.1f}s"
    if column == "learning_rate":
        return lambda v: f"{v:.3g}"
    return lambda v: f"{v:.4f}"


def predict(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model.safetensors (or the run folder holding it)."),
    images: list[Path] = typer.Argument(..., metavar="IMAGE...", help="PNG or JPEG files, any size and colour mode."),
    top: int = typer.Option(3, "--top", "-k", help="How many of the most probable classes to show."),
    invert: Optional[bool] = typer.Option(
        None, "--invert/--no-invert",
        help="Invert the image (white <-> black). Default: automatic for grayscale models, which invert an image "
             "with a light background, since MNIST-style training images are white digits on black; a "
             "dark-on-light scan or photo of handwriting is therefore inverted. Colour models are never inverted "
             "unless asked.",
    ),
    center: Optional[bool] = typer.Option(
        None, "--center/--no-center",
        help="Prepare a grayscale image the way MNIST digits were: crop to the ink, scale it into a 20x20 box "
             "(of 28x28) keeping its aspect ratio, centre it by its centre of mass. Default: on for grayscale "
             "models; --no-center resizes the whole image instead.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per forward pass."),
) -> None:
    """Class probabilities of images under a trained model (try your own handwriting on an MNIST model).

    Each image is converted to the model's input: grayscale for 1-channel models, RGB for
    3-channel ones (transparency over white), inverted when it is dark on light (grayscale models),
    the digit centred as in MNIST (grayscale models) or the whole image resized to the model's
    height x width, then scaled (and normalized) as the training data were. Images larger than 50
    megapixels (width x height) are refused, from their header, before any pixel is decoded. Needs
    Pillow: pip install 'numpyml\\[plot]' (or 'numpyml\\[image]').
    """
    import numpy as np

    from numpyml_core.plugin_api import read_model

    from . import inference, require

    with user_errors():
        if top < 1:
            raise UserError(f"--top must be at least 1, got {top}.")
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}.")
        if model_path.is_dir():
            model_path = RunFolder(model_path).model_path
        manager = plugin_manager()
        model, architecture = read_model(model_path, manager)  # a bad model file is named first, Pillow or not
        shape = inference.model_image_shape(model.input_shape, str(model_path))
        require("PIL")
        config = inference.read_run_config(model_path)
        try:
            dataset = inference.create_dataset(manager, architecture, config, str(model_path))
        except UserError:
            dataset = None  # a dataset plugin that is not installed: plain [0, 1] scaling
        convert = inference.input_converter(dataset)
        centered = shape[2] == 1 if center is None else center
        loaded = [inference.load_image(path, shape, invert, centered) for path in images]
        pixels = np.stack([array for array, _ in loaded])
        probabilities = np.concatenate([
            inference.to_probabilities(model.predict(convert(pixels[start:start + batch_size])))
            for start in range(0, len(pixels), batch_size)
        ])
        names = inference.class_names(architecture, probabilities.shape[1], dataset)
    results = [
        {"image": str(path), "inverted": inverted, "predictions": inference.top_k(p, names, top)}
        for path, (_, inverted), p in zip(images, loaded, probabilities)
    ]
    if as_json:
        print(json.dumps({"model": str(model_path), "input_shape": list(shape), "results": results}, indent=2))
        return
    for result in results:
        guesses = ", ".join(f"{p['class']} {100 * p['probability']:.1f}%" for p in result["predictions"])
        note = "  (inverted)" if result["inverted"] else ""
        print(f"{result['image']}: {guesses}{note}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (the report plugin's ``numpyml_register_commands`` hook)."""
    app.command("report")(report)
    app.command("runs")(runs)
    app.command("show")(show)
    app.command("predict")(predict)
