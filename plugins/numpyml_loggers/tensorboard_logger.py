"""The ``tensorboard`` callback: scalars for TensorBoard, written with tensorboardX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from numpyml_core import hookimpl

from ._common import epoch_scalars, import_extra


def tag(metric: str) -> str:
    """TensorBoard tag of a metrics.csv column: ``validation_loss`` -> ``loss/validation`` (so each
    chart overlays the splits), ``learning_rate`` -> ``learning_rate``, ``seconds`` -> ``time/epoch_seconds``."""
    for kind in ("loss", "accuracy"):
        if metric.endswith(f"_{kind}"):
            return f"{kind}/{metric[: -len(kind) - 1]}"
    if metric == "seconds":
        return "time/epoch_seconds"
    return metric


class TensorBoardLogger:
    """Write TensorBoard scalars to ``<run folder>/<log_dir>`` (view with ``tensorboard --logdir``).

    Per epoch (step = the epoch number): every metric of metrics.csv, as ``loss/<split>``,
    ``accuracy/<split>``, ``learning_rate`` and ``time/epoch_seconds``. With ``every_n_batches`` > 0,
    also ``batch/train_loss`` every that many batches (step = optimizer steps taken). Needs
    tensorboardX: ``pip install 'numpyml[tensorboard]'``.
    """

    def __init__(self, log_dir: str = "tensorboard", every_n_batches: int = 0, flush_seconds: float = 10.0) -> None:
        if every_n_batches < 0:
            raise ValueError(f"every_n_batches must be 0 (off) or more, got {every_n_batches}")
        if not log_dir:
            raise ValueError("log_dir must name a folder (relative to the run folder, or absolute)")
        self._tensorboardx = import_extra("tensorboardX", "tensorboardX", "tensorboard", "tensorboard")
        self.log_dir = log_dir
        self.every_n_batches = int(every_n_batches)
        self.flush_seconds = float(flush_seconds)
        self.writer: Any = None

    def folder(self, run: Any) -> Path:
        path = Path(self.log_dir)
        if path.is_absolute() or run.output_dir is None:
            return path
        return Path(run.output_dir) / path

    @hookimpl
    def numpyml_on_run_start(self, run: Any) -> None:
        self.writer = self._tensorboardx.SummaryWriter(logdir=str(self.folder(run)), flush_secs=self.flush_seconds)

    @hookimpl
    def numpyml_on_batch_end(self, run: Any, loss: float | None) -> None:
        if self.writer is None or not self.every_n_batches or loss is None:
            return
        if run.step % self.every_n_batches == 0:
            self.writer.add_scalar("batch/train_loss", float(loss), run.step)

    @hookimpl
    def numpyml_on_epoch_end(self, epoch: int, metrics: dict) -> None:
        if self.writer is None:
            return
        for metric, value in epoch_scalars(metrics).items():
            self.writer.add_scalar(tag(metric), value, epoch)
        self.writer.flush()

    @hookimpl
    def numpyml_on_run_end(self) -> None:
        self._close()

    @hookimpl
    def numpyml_on_error(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
