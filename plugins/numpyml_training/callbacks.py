"""The training-control callbacks of the ``numpyml_training`` plugin (see its package docstring)."""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np

from numpyml_core import hookimpl


def _mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if monitor.endswith("accuracy") else "min"


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


class Checkpoint:
    """Write checkpoints into ``<run folder>/checkpoints/``.

    * ``last.safetensors`` after every epoch, and also every ``every_batches`` batches and/or every
      ``every_minutes`` minutes when set (both off by default);
    * ``best.safetensors`` whenever ``monitor`` improves (``mode`` "max", "min", or "auto": max for
      accuracies, min otherwise), when ``save_best`` is true;
    * ``last.safetensors`` when the run is interrupted (Ctrl-C) at a batch boundary.

    Each checkpoint holds everything needed to continue exactly (``numpyml resume RUN_DIR``); see
    :mod:`numpyml_core.checkpoint`. Written atomically: a kill at any moment leaves the previous
    checkpoint intact.
    """

    def __init__(self, every_batches: int | None = None, every_minutes: float | None = None,
                 monitor: str = "validation_accuracy", mode: Literal["auto", "max", "min"] = "auto",
                 save_best: bool = True) -> None:
        if every_batches is not None and every_batches < 1:
            raise ValueError(f"every_batches must be at least 1, got {every_batches}")
        if every_minutes is not None and not every_minutes > 0:
            raise ValueError(f"every_minutes must be positive, got {every_minutes}")
        self.every_batches = every_batches
        self.every_minutes = every_minutes
        self.monitor = monitor
        self.mode = mode
        self.save_best = save_best
        self.best: float | None = None
        self._last_write = time.monotonic()

    def _write(self, run: Any, which: Literal["last", "best"]) -> None:
        if run.folder is None:
            return
        run.folder.write_checkpoint(run, which)
        self._last_write = time.monotonic()

    @hookimpl
    def numpyml_on_run_start(self, run: Any) -> None:
        self._last_write = time.monotonic()

    @hookimpl
    def numpyml_on_batch_end(self, run: Any, batch: int) -> None:
        if run.batch >= run.batches_per_epoch:
            return  # the epoch-end checkpoint follows
        due = self.every_batches is not None and run.batch % self.every_batches == 0
        if self.every_minutes is not None and time.monotonic() - self._last_write >= 60 * self.every_minutes:
            due = True
        if due:
            self._write(run, "last")

    @hookimpl(trylast=True)
    def numpyml_on_epoch_end(self, run: Any, metrics: dict) -> None:
        value = metrics.get(self.monitor)
        mode = _mode(self.monitor, self.mode)
        is_best = self.save_best and value is not None and _improved(float(value), self.best, mode, 0.0)
        if is_best:
            self.best = float(value)
        self._write(run, "last")  # after self.best changed: the state includes it
        if is_best:
            self._write(run, "best")

    @hookimpl
    def numpyml_on_error(self, run: Any, error: BaseException) -> None:
        if isinstance(error, KeyboardInterrupt) and run.at_boundary:
            self._write(run, "last")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")


class EarlyStopping:
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs. ``mode``: "max", "min", or "auto" (max for accuracies, min otherwise). With
    ``restore_best_weights`` the model ends with the parameters of its best epoch (so
    ``model.safetensors`` holds them)."""

    def __init__(self, monitor: str = "validation_loss", mode: Literal["auto", "max", "min"] = "auto",
                 patience: int = 5, min_delta: float = 0.0, restore_best_weights: bool = True) -> None:
        if patience < 0:
            raise ValueError(f"patience must be at least 0, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be at least 0, got {min_delta}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, np.ndarray] = {}

    @hookimpl
    def numpyml_on_epoch_end(self, run: Any, epoch: int, metrics: dict) -> None:
        if self.monitor not in metrics:
            raise ValueError(
                f"early_stopping: monitor '{self.monitor}' is not among this run's metrics "
                f"({', '.join(k for k in metrics if k != 'epoch')})"
            )
        value = float(metrics[self.monitor])
        if _improved(value, self.best, _mode(self.monitor, self.mode), self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in run.model.tensors().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            run.control.should_stop = True
            run.control.stop_reason = (
                f"early stopping: {self.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
            )

    @hookimpl
    def numpyml_on_run_end(self, run: Any) -> None:
        if self.restore_best_weights and self.best_weights:
            run.model.load_tensors(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        state.update({f"weights.{k}": v for k, v in self.best_weights.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = int(state.get("best_epoch", 0))
        self.wait = int(state.get("wait", 0))
        self.best_weights = {k[len("weights."):]: np.array(v) for k, v in state.items() if k.startswith("weights.")}
