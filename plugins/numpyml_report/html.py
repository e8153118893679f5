"""The self-contained HTML report of one or more runs (``numpyml report``).

One file, no external resources: the plots are PNGs embedded as ``data:`` URIs, the style sheet is
inline, and there is no script. Sections: summary, loss and accuracy curves, learning rate (when a
schedule was used), time per epoch, the configs side by side (differences highlighted), and for
each run's final model on the test split: the confusion matrix and the most confidently
misclassified images.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from numpyml_core import UserError
from . import inference, plots
from .rundata import RunData, SweepData, compare_configs, date, duration, percent

MISCLASSIFIED = 24  # images in the grid (three rows of eight)

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330;
       max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 34px 0 10px; border-bottom: 2px solid #e3e7ee;
     padding-bottom: 4px; } h3 { font-size: 16px; margin: 22px 0 6px; }
.meta { color: #5b6475; margin: 0 0 10px; } nav a { margin-right: 14px; color: #2f5fb3; text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13.5px; }
th, td { border: 1px solid #d9dee7; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f3f5f9; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.config td { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px;
                  max-width: 420px; overflow-wrap: anywhere; }
table.config tr.diff td { background: #fff4cc; } table.config tr.diff td:first-child { border-left: 4px solid #e0a800; }
td.absent { color: #9aa3b2; } .legend-diff { background: #fff4cc; border-left: 4px solid #e0a800; padding: 0 6px; }
figure { margin: 8px 0 18px; } figure img { max-width: 100%; height: auto; border: 1px solid #eef0f4; }
figcaption { color: #5b6475; font-size: 13px; margin-top: 2px; }
.note { color: #8a5a00; background: #fff8e6; border: 1px solid #f1dca6; padding: 6px 10px; border-radius: 4px; }
.best { font-weight: 700; }
"""


@dataclass
class Report:
    html: str
    warnings: list[str] = field(default_factory=list)


def _img(data: bytes | None, alt: str, caption: str = "") -> str:
    if data is None:
        return ""
    encoded = base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">{cap}</figure>'


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------
def _summary(runs: Sequence[RunData]) -> str:
    best_test = max((r.test_accuracy for r in runs if r.test_accuracy is not None), default=None)
    rows = []
    for run in runs:
        best_val = run.best_validation_accuracy
        best_epoch = run.summary.get("best_epoch")
        val = percent(best_val) + (f" (epoch {best_epoch})" if best_epoch else "")
        test_class = ' class="num best"' if len(runs) > 1 and run.test_accuracy == best_test else ' class="num"'
        parameters = run.summary.get("parameters")
        status = run.summary.get("stop_reason") or ("finished" if run.finished else "unfinished")
        rows.append(
            f"<tr><td>{html.escape(run.name)}</td><td>{html.escape(run.dataset or '—')}</td>"
            f"<td>{html.escape(date(run))}</td><td class=\"num\">{run.epochs}</td><td class=\"num\">{val}</td>"
            f"<td{test_class}>{percent(run.test_accuracy)}</td>"
            f"<td class=\"num\">{_fmt(run.last('test_loss'))}</td>"
            f"<td class=\"num\">{f'{parameters:,}' if isinstance(parameters, int) else '—'}</td>"
            f"<td class=\"num\">{duration(run.seconds)}</td><td>{html.escape(str(status))}</td></tr>"
        )
    head = ("<tr><th>run</th><th>dataset</th><th>started</th><th>epochs</th><th>best validation accuracy</th>"
            "<th>test accuracy</th><th>test loss</th><th>parameters</th><th>time</th><th>status</th></tr>")
    return f'<section id="summary"><h2>Summary</h2><table class="summary">{head}{"".join(rows)}</table></section>'


def _sweep(sweep: SweepData) -> str:
    """The trials of a sweep as a table, best validation accuracy first (the best trial in bold)."""
    best = sweep.best()
    head = "".join(f"<th>{html.escape(key)}</th>" for key in ["trial", *sweep.keys, "status", "validation accuracy",
                                                             "test accuracy", "time"])
    body = []
    for row in sorted(sweep.rows, key=sweep.score, reverse=True):  # stable: ties stay in trial order
        figures = [percent(float(row[k])) if sweep.number(row, k) else "—" for k in ("validation_accuracy",
                                                                                    "test_accuracy")]
        figures.append(duration(float(row["seconds"])) if sweep.number(row, "seconds") else "—")
        cells = ([f"<td>{html.escape(row.get(k) or '')}</td>" for k in ["trial", *sweep.keys, "status"]]
                 + [f'<td class="num">{figure}</td>' for figure in figures])
        marker = ' class="best"' if row is best else ""
        body.append(f"<tr{marker}>{''.join(cells)}</tr>")
    if best is None:
        named = "no trial has a validation accuracy yet"
    else:
        values = ", ".join(f"{html.escape(key)} = {html.escape(best.get(key) or '')}" for key in sweep.keys)
        named = f"best trial (validation accuracy): {html.escape(best['trial'])}, {values}"
    return (f"<h3>{html.escape(sweep.path.resolve().name)}: {len(sweep.rows)} trials</h3><p>{named}.</p>"
            f'<table class="sweep"><tr>{head}</tr>{"".join(body)}</table>')


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _config(runs: Sequence[RunData]) -> str:
    rows = compare_configs([run.config for run in runs])
    differing = sum(1 for _, _, differs in rows if differs)
    head = "<tr><th>setting</th>" + "".join(f"<th>{html.escape(run.name)}</th>" for run in runs) + "</tr>"
    body = []
    for key, values, differs in rows:
        cells = "".join(
            f'<td class="absent">(not set)</td>' if value is None else f"<td>{html.escape(_value(value))}</td>"
            for value in values
        )
        row_class = ' class="diff"' if differs else ""
        body.append(f"<tr{row_class}><td>{html.escape(key)}</td>{cells}</tr>")
    if len(runs) > 1:
        note = (f'<p class="meta">{differing} of {len(rows)} settings differ between the runs '
                '(<span class="legend-diff">highlighted</span>).</p>')
    else:
        note = '<p class="meta">The resolved experiment (every parameter, defaults included) and the versions used.</p>'
    return (f'<section id="config"><h2>Configuration</h2>{note}'
            f'<table class="config">{head}{"".join(body)}</table></section>')


class _DataCache:
    """Datasets loaded once per (name, parameters) for all the runs of a report."""

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self.loaded: dict[str, tuple[Any, dict[str, Any]]] = {}

    def get(self, manager: Any, run: RunData, architecture: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        key = json.dumps([architecture.get("dataset"),
                          inference.dataset_params(run.config, architecture.get("dataset") or "")], sort_keys=True)
        if key not in self.loaded:
            dataset = inference.create_dataset(manager, architecture, run.config, str(run.model_path))
            self.loaded[key] = (dataset, dict(dataset.load(self.data_dir)))
        return self.loaded[key]


def _test_section(run: RunData, manager: Any, cache: _DataCache) -> str:
    from numpyml_core.plugin_api import read_model

    title = f"<h3>{html.escape(run.name)}</h3>"
    if not run.model_path.is_file():
        return title + '<p class="note">No model.safetensors in this run folder (the run did not finish): no test results.</p>'
    model, architecture = read_model(run.model_path, manager)
    dataset, splits = cache.get(manager, run, architecture)
    if tuple(getattr(dataset, "input_shape", model.input_shape)) != tuple(model.input_shape):
        raise UserError(f"dataset '{architecture.get('dataset')}' has samples of shape {tuple(dataset.input_shape)} "
                        f"but the model takes {tuple(model.input_shape)}.")
    if "test" not in splits:
        return title + (f'<p class="note">Dataset \'{html.escape(str(architecture.get("dataset")))}\' has no test '
                        f'split (it has {html.escape(", ".join(sorted(splits)))}).</p>')
    split = splits["test"]
    probabilities, labels = inference.predict_split(model, split)
    classes = probabilities.shape[1]
    names = inference.class_names(architecture, classes, dataset)
    predicted = probabilities.argmax(axis=1)
    matrix = inference.confusion_matrix(labels, predicted, classes)
    correct = int(np.trace(matrix))
    accuracy = correct / max(len(labels), 1)
    parts = [title, f'<p class="meta">{len(labels):,} test samples, {correct:,} right: accuracy '
                    f'{100 * accuracy:.2f}%.</p>']
    parts.append(_img(plots.confusion(matrix, names, f"{run.name}: confusion matrix (test split)"),
                      f"confusion matrix of {run.name} on the test split",
                      "Rows: the true class; columns: the predicted class; numbers are counts, colours the "
                      "fraction of the true class (on a power scale, so that error rates of a few per cent show)."))
    wrong = np.flatnonzero(predicted != labels)
    if len(wrong):
        confidence = probabilities[wrong, predicted[wrong]]
        chosen = wrong[np.argsort(-confidence, kind="stable")[:MISCLASSIFIED]]
        images = _display_images(split, chosen)
        titles = [f"true: {_short(names[labels[i]])}\npred: {_short(names[predicted[i]])} "
                  f"({100 * probabilities[i, predicted[i]]:.0f}%)" for i in chosen]
        parts.append(_img(plots.image_grid(images, titles), f"most confidently misclassified test images of {run.name}",
                          f"The {len(chosen)} misclassified test images the model was most sure about "
                          f"({len(wrong):,} misclassified in all), most confident first."))
    else:
        parts.append('<p class="meta">No test image is misclassified.</p>')
    return "".join(parts)


def _short(name: str, width: int = 13) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _display_images(split: Any, indices: np.ndarray) -> np.ndarray:
    """The images as stored (uint8) when the split keeps them so, else the model inputs."""
    raw = getattr(split, "x", None)
    if isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.ndim == 4:
        return raw[indices]
    x, _ = split.batch(indices)
    return x if x.ndim == 4 else x.reshape(len(indices), 1, -1, 1)


def schedule_curve(run: RunData, manager: Any, points: int = 2000) -> tuple[np.ndarray, np.ndarray] | None:
    """The learning rate at every optimizer step (x in epochs, the first step at 0), recomputed from
    the run's ``[training.schedule]`` and ``[optimizer] learning_rate``; ``None`` when the run used
    no schedule or it cannot be recomputed (then the per-epoch values of metrics.csv are shown)."""
    table = (run.config.get("training") or {}).get("schedule")
    base = (run.config.get("optimizer") or {}).get("learning_rate")
    steps, epochs = run.summary.get("steps"), run.summary.get("epochs")
    configured = (run.config.get("training") or {}).get("epochs")
    if not isinstance(table, dict) or not isinstance(base, (int, float)) or not steps or not epochs or not configured:
        return None
    try:
        per_epoch = int(steps) // int(epochs)
        params = {k: v for k, v in table.items() if k != "type"}
        schedule = manager.create("schedule", table["type"], **params)
        bind = getattr(schedule, "bind", None)
        if bind is not None:
            bind(total_steps=int(configured) * per_epoch, steps_per_epoch=per_epoch)
        every = max(1, int(steps) // points)
        step_numbers = np.arange(0, int(steps), every)
        rates = np.array([float(schedule(int(s), int(s) // per_epoch, float(base))) for s in step_numbers])
    except Exception:  # noqa: BLE001 - a plot is not worth failing the report: fall back to metrics.csv
        return None
    return (step_numbers + 1) / per_epoch, rates


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------
def build_report(runs: Sequence[RunData], manager: Any, data_dir: str | None = None,
                 sweeps: Sequence[SweepData] = ()) -> Report:
    """The report page of ``runs`` (in the order given), with a table of each of ``sweeps``' trials."""
    plots.require("matplotlib")
    warnings: list[str] = []
    names = ", ".join(run.name for run in runs)
    generated = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    sections = [_summary(runs)]
    if sweeps:
        sections.append('<section id="sweep"><h2>Sweep</h2>' + "".join(_sweep(sweep) for sweep in sweeps)
                        + "</section>")

    loss = plots.curves(runs, "loss")
    accuracy = plots.curves(runs, "accuracy")
    curves = _img(loss, "loss curves", "Mean loss per epoch for each split; the training loss is the mean over "
                                       "the epoch's batches, the others are measured after the epoch.")
    curves += _img(accuracy, "accuracy curves", "Accuracy per epoch for each split.")
    if not curves:
        curves = '<p class="note">metrics.csv has no loss or accuracy columns yet.</p>'
    sections.append(f'<section id="curves"><h2>Loss and accuracy</h2>{curves}</section>')
    rate = plots.learning_rate(runs, {run.name: curve for run in runs
                                      if (curve := schedule_curve(run, manager)) is not None})
    if rate is not None:
        sections.append('<section id="learning-rate"><h2>Learning rate</h2>'
                        + _img(rate, "learning rate per epoch", "The learning rate the schedule set: the line at every step "
                                                   "(recomputed from the run's schedule), the dots as metrics.csv "
                                                   "recorded them at the end of each epoch.")
                        + "</section>")
    seconds = plots.epoch_time(runs)
    if seconds is not None:
        sections.append('<section id="epoch-time"><h2>Time per epoch</h2>'
                        + _img(seconds, "seconds per epoch") + "</section>")
    sections.append(_config(runs))

    cache = _DataCache(data_dir)
    tests = []
    for run in runs:
        try:
            tests.append(_test_section(run, manager, cache))
        except UserError as exc:
            message = f"{run.name}: no test results: {exc}"
            warnings.append(message)
            tests.append(f"<h3>{html.escape(run.name)}</h3><p class=\"note\">{html.escape(message)}</p>")
    sections.append('<section id="test"><h2>Final model on the test split</h2>' + "".join(tests) + "</section>")

    nav_items = [("summary", "Summary")] + ([("sweep", "Sweep")] if sweeps else []) + [("curves", "Loss and accuracy")]
    if rate is not None:
        nav_items.append(("learning-rate", "Learning rate"))
    if seconds is not None:
        nav_items.append(("epoch-time", "Time per epoch"))
    nav_items += [("config", "Configuration"), ("test", "Test split")]
    nav = "<nav>" + "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in nav_items) + "</nav>"
    title = f"numpyml report: {names}"
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Training report</h1><p class=\"meta\">{len(runs)} run{'s' if len(runs) != 1 else ''}: "
        f"{html.escape(names)} · generated {generated} by numpyml</p>{nav}"
        + "".join(sections) + "</body></html>\n"
    )
    return Report(page, warnings)
