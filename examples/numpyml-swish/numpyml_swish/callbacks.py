"""A training callback: stop as soon as a metric reaches a target."""

from __future__ import annotations

from typing import Any, Literal

from numpyml_core import hookimpl


class StopAtTarget:
    """End training after the epoch in which ``monitor`` reaches ``target``.

    * ``monitor``: a column of metrics.csv (``validation_accuracy``, ``train_loss``, ...).
    * ``target``: the value to reach.
    * ``mode``: ``"max"`` stops when the metric is at least ``target``, ``"min"`` at most.

    Asks the trainer to stop through ``run.control`` (callbacks never raise to stop); the reason
    lands in summary.json as ``stop_reason``.
    """

    def __init__(self, monitor: str = "validation_accuracy", target: float = 0.95,
                 mode: Literal["max", "min"] = "max") -> None:
        self.monitor = monitor
        self.target = float(target)
        self.mode = mode

    @hookimpl
    def numpyml_on_epoch_end(self, run: Any, epoch: int, metrics: dict) -> None:
        value = metrics.get(self.monitor)
        if value is None:
            return
        if (value >= self.target) if self.mode == "max" else (value <= self.target):
            run.control.should_stop = True
            run.control.stop_reason = f"{self.monitor} reached {value:.4g} (target {self.target:g}) in epoch {epoch}"
