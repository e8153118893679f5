"""numpyml built-in plugin: the console progress display (``progress`` callback).

An epoch bar and a batch bar (ms/batch, ETA, live loss), refreshed at a few Hz whatever the batch
rate; after every epoch a line with the training loss, each evaluated split's loss and accuracy,
and the epoch time. The per-batch hook only compares a clock: the drawing happens at most
``refresh_per_second`` times a second.
"""

from __future__ import annotations

import time
from typing import Any

from numpyml_core import hookimpl


class Progress:
    """Rich progress bars for epochs and batches, and one summary line per epoch."""

    def __init__(self, refresh_per_second: float = 4.0) -> None:
        if refresh_per_second <= 0:
            raise ValueError(f"refresh_per_second must be positive, got {refresh_per_second}")
        self.refresh_per_second = refresh_per_second
        self._interval = 1.0 / refresh_per_second
        self._progress: Any = None
        self._console: Any = None

    @hookimpl
    def numpyml_on_run_start(self, run: Any) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._console = Console(stderr=False, highlight=False)
        spec = run.spec
        self._console.print(
            f"[bold]{spec.name}[/bold]: {run.model.count_params():,} parameters, "
            f"{len(run.splits['train']):,} training samples, "
            + ", ".join(f"{name} {len(run.splits[name]):,}" for name in run.eval_splits)
            + f"; batch {spec.training.batch_size}, strategy {spec.strategy.type}",
            soft_wrap=True,
        )
        self._progress = RichProgress(
            TextColumn("{task.description}", justify="right"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console,
            refresh_per_second=self.refresh_per_second,
            transient=False,
        )
        self._progress.start()
        self._epochs = self._progress.add_task("epochs", total=spec.training.epochs, completed=run.epoch, info="")
        self._batches = self._progress.add_task("batches", total=run.batches_per_epoch, info="")

    @hookimpl
    def numpyml_on_epoch_start(self, run: Any, epoch: int) -> None:
        if self._progress is None:
            return
        self._epoch_started = time.perf_counter()
        self._next_draw = 0.0
        self._loss_sum = 0.0
        self._loss_count = 0
        self._first_batch = run.batch  # > 0 when resuming mid-epoch
        self._progress.reset(self._batches, total=run.batches_per_epoch, completed=run.batch, info="")
        self._progress.update(self._batches, description=f"epoch {epoch}")

    @hookimpl
    def numpyml_on_batch_end(self, run: Any, batch: int, loss: float | None) -> None:
        if self._progress is None:
            return
        if loss is not None:
            self._loss_sum += loss
            self._loss_count += 1
        now = time.perf_counter()
        if now < self._next_draw and batch + 1 < run.batches_per_epoch:
            return
        self._next_draw = now + self._interval
        ms = 1000.0 * (now - self._epoch_started) / max(batch + 1 - self._first_batch, 1)
        loss_text = f"{self._loss_sum / self._loss_count:.4f}" if self._loss_count else "-"
        info = f"{ms:6.2f} ms/batch  loss {loss_text}"
        self._progress.update(self._batches, completed=batch + 1, info=info)

    @hookimpl
    def numpyml_on_epoch_end(self, run: Any, epoch: int, metrics: dict) -> None:
        if self._progress is None:
            return
        self._progress.update(self._epochs, completed=epoch)
        parts = [f"epoch {epoch:>3}/{run.spec.training.epochs}", f"train loss {metrics['train_loss']:.4f}"]
        for name in run.eval_splits:
            parts.append(
                f"{name} loss {metrics[f'{name}_loss']:.4f} acc [bold]{100 * metrics[f'{name}_accuracy']:.2f}%[/bold]"
            )
        if "learning_rate" in metrics:
            parts.append(f"lr {metrics['learning_rate']:.3g}")
        parts.append(f"{metrics['seconds']:.1f}s")
        self._progress.console.print("  ".join(parts), soft_wrap=True)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @hookimpl
    def numpyml_on_run_end(self, run: Any, summary: dict) -> None:
        self._stop()

    @hookimpl
    def numpyml_on_error(self, run: Any, error: BaseException) -> None:
        self._stop()


@hookimpl
def numpyml_register_components(register):
    register("callback", "progress", Progress)
