"""The report's figures, rendered to PNG bytes with matplotlib's Agg backend.

Figures are built with the object-oriented API (``matplotlib.figure.Figure`` on a
``FigureCanvasAgg``), never through ``pyplot``: no global state, no GUI backend, safe to call from
any thread or from a program that uses another backend itself.
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np

from . import require
from .rundata import RunData

DPI = 100
SPLIT_STYLES = {"train": "-", "validation": "--", "test": ":"}


def _figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _integer_epochs(axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.grid(True, alpha=0.3)


def _series(run: RunData, column: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(run.metrics.get(column, []), dtype=np.float64)
    epochs = np.asarray(run.metrics.get("epoch", range(1, len(values) + 1)), dtype=np.float64)[: len(values)]
    keep = np.isfinite(values)
    return epochs[keep], values[keep]


def _legend(figure: Any, axes_list: Sequence[Any], runs: Sequence[RunData]) -> None:
    if len(runs) > 1:
        seen = {}
        for ax in axes_list:
            for h, label in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(label, h)
        figure.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(len(seen), 4),
                      frameon=False, fontsize="small")


def curve_splits(runs: Sequence[RunData]) -> list[str]:
    """Every split with a loss or accuracy column in any run: train, validation, test, then others."""
    splits: list[str] = []
    for run in runs:
        for metric in ("loss", "accuracy"):
            splits += [s for s in run.splits(metric) if s not in splits]
    order = {"train": 0, "validation": 1, "test": 2}
    return sorted(splits, key=lambda s: (order.get(s, 3), s))


def curves(runs: Sequence[RunData], metric: str, splits: Sequence[str] | None = None) -> bytes | None:
    """One panel per split (``splits``, default :func:`curve_splits`: the same columns for loss and
    accuracy, so the two figures line up), every run overlaid and labelled by its folder name."""
    splits = list(splits if splits is not None else curve_splits(runs))
    if not any(f"{split}_{metric}" in run.metrics for run in runs for split in splits):
        return None
    figure = _figure(min(4.0 * len(splits), 12.0), 3.5 + (0.3 * math.ceil(len(runs) / 4) if len(runs) > 1 else 0))
    axes_list = figure.subplots(1, len(splits), squeeze=False)[0]
    colors = _colors(len(runs))
    for axes, split in zip(axes_list, splits):
        axes.set_title(f"{split} {metric}")
        if not any(f"{split}_{metric}" in run.metrics for run in runs):
            axes.set_axis_off()
            hint = " (set [training] eval_train = true)" if split == "train" and metric == "accuracy" else ""
            axes.text(0.5, 0.5, f"not measured{hint}", ha="center", va="center", color="#777777",
                      fontsize="small", wrap=True, transform=axes.transAxes)
            continue
        for color, run in zip(colors, runs):
            epochs, values = _series(run, f"{split}_{metric}")
            if len(values) == 0:
                continue
            if metric == "accuracy":
                values = 100 * values
            axes.plot(epochs, values, color=color, marker="o", markersize=3, linewidth=1.6, label=run.name)
        axes.set_ylabel("accuracy (%)" if metric == "accuracy" else metric)
        _integer_epochs(axes)
    _legend(figure, axes_list, runs)
    return png(figure)


def learning_rate(runs: Sequence[RunData], per_step: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> bytes | None:
    """Learning rate over the epochs: the schedule's value at every step when ``per_step`` has the
    run (x in epochs), and the rate recorded in metrics.csv at the end of each epoch (markers)."""
    per_step = per_step or {}
    with_rates = [run for run in runs if any(math.isfinite(v) for v in run.metrics.get("learning_rate", []))]
    if not with_rates:
        return None
    figure = _figure(7.5, 3.4)
    axes = figure.subplots()
    for color, run in zip(_colors(len(runs)), runs):
        if run not in with_rates:
            continue
        epochs, values = _series(run, "learning_rate")
        if run.name in per_step:
            x, y = per_step[run.name]
            axes.plot(x, y, color=color, linewidth=1.4, label=run.name)
            axes.plot(epochs, values, color=color, marker="o", markersize=3, linestyle="none")
        else:
            axes.plot(epochs, values, color=color, marker="o", markersize=3, label=run.name)
    axes.set_title("learning rate (line: every step; dots: end of each epoch)" if per_step else
                   "learning rate (at the end of each epoch)")
    axes.set_ylabel("learning rate")
    axes.set_ylim(bottom=0)
    _integer_epochs(axes)
    if len(runs) > 1:
        axes.legend(fontsize="small", frameon=False)
    return png(figure)


def epoch_time(runs: Sequence[RunData]) -> bytes | None:
    """Seconds per epoch (training and evaluation), every run overlaid."""
    if not any(run.metrics.get("seconds") for run in runs):
        return None
    figure = _figure(7.5, 3.4)
    axes = figure.subplots()
    for color, run in zip(_colors(len(runs)), runs):
        epochs, values = _series(run, "seconds")
        if len(values):
            axes.plot(epochs, values, color=color, marker="o", markersize=3, label=run.name)
    axes.set_title("time per epoch (training and evaluation)")
    axes.set_ylabel("seconds")
    axes.set_ylim(bottom=0)
    _integer_epochs(axes)
    if len(runs) > 1:
        axes.legend(fontsize="small", frameon=False)
    return png(figure)


def confusion(matrix: np.ndarray, names: Sequence[str], title: str) -> bytes:
    """Counts ``matrix[true, predicted]``, coloured by the fraction of each true class (row)."""
    classes = len(names)
    size = 5.5 if classes <= 10 else (8.0 if classes <= 20 else 10.0)
    figure = _figure(size + 1.0, size)
    axes = figure.subplots()
    totals = matrix.sum(axis=1, keepdims=True)
    fractions = matrix / np.maximum(totals, 1)
    from matplotlib.colors import PowerNorm

    # a power scale, so that the few per cent off the diagonal show next to the ~95 % on it
    norm = PowerNorm(gamma=0.4, vmin=0.0, vmax=1.0)
    image = axes.imshow(fractions, cmap="Blues", norm=norm)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class",
                    ticks=[0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0])
    if classes <= 20:
        ticks = np.arange(classes)
        axes.set_xticks(ticks, [str(n) for n in names], rotation=45 if max(map(len, names)) > 2 else 0,
                        ha="right" if max(map(len, names)) > 2 else "center", fontsize="small")
        axes.set_yticks(ticks, [str(n) for n in names], fontsize="small")
        for i in range(classes):
            for j in range(classes):
                count = int(matrix[i, j])
                if count:
                    axes.text(j, i, str(count), ha="center", va="center", fontsize=8 if classes <= 10 else 6,
                              color="white" if norm(fractions[i, j]) > 0.55 else "black")
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    return png(figure)


def image_grid(images: np.ndarray, titles: Sequence[str], columns: int = 8) -> bytes:
    """Images ``(N, H, W, C)`` (uint8, or floats shown min-max scaled) in a grid, each with a title."""
    count = len(images)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    cell_width, cell_height, picture = 1.45, 1.8, 1.2  # inches; the title sits above the picture
    figure = _figure(cell_width * columns, cell_height * rows, layout=None)  # fixed grid: no layout engine
    width, height = cell_width * columns, cell_height * rows
    for index in range(count):
        row, column = divmod(index, columns)
        left = (column * cell_width + (cell_width - picture) / 2) / width
        bottom = ((rows - row - 1) * cell_height + 0.08) / height
        axes = figure.add_axes((left, bottom, picture / width, picture / height))
        axes.set_axis_off()
        image = np.asarray(images[index])
        if image.dtype != np.uint8:
            low, high = float(image.min()), float(image.max())
            image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.ndim == 3 and image.shape[-1] == 1:
            axes.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1,
                        interpolation="nearest")
        else:
            axes.imshow(image, interpolation="nearest")
        axes.set_title(titles[index], fontsize=8.5)
    return png(figure)
