"""Early stopping of poor trials (``numpyml sweep --scheduler asha``): Ray Tune's ASHA scheduler, fed each
trial's epochs as its metrics.csv records them.

Ray Tune's :class:`~ray.tune.schedulers.ASHAScheduler` (asynchronous successive halving, Li et al. 2018) decides;
the sweep's own runner (local processes or Ray tasks) keeps running the trials and keeps the sweep folder, so a
sweep with early stopping has the same run folders and sweep.csv as one without. The scheduler is driven through
its public ``TrialScheduler`` methods (``on_trial_add``, ``on_trial_result``): each new epoch's validation
accuracy is one result, the epoch its time. A stopped trial gets SIGINT (it writes its checkpoint and ends, as on
Ctrl-C) and the status ``stopped`` in sweep.csv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from numpyml_core import RunFolder, UserError

#: what the scheduler compares: the trials' validation accuracy after each epoch (higher is better)
METRIC = "validation_accuracy"


@dataclass(frozen=True)
class _TrialHandle:
    """What Ray Tune's schedulers need of a trial: its id."""

    trial_id: str


class EarlyStopping:
    """ASHA over the trials numbered ``trial_numbers``: call :meth:`poll` with a running trial's run folder; it
    returns the epoch at which the scheduler stops that trial (``None``: let it go on).

    ``max_epochs`` is the longest trial's epochs; a trial may be stopped after ``grace_period`` epochs at the
    earliest, and at each rung (``grace_period * reduction_factor ** k`` epochs) only the best
    ``1 / reduction_factor`` of the trials that reached it so far go on."""

    def __init__(self, trial_numbers: list[int], max_epochs: int, grace_period: int = 1,
                 reduction_factor: float = 3.0) -> None:
        if grace_period < 1 or grace_period > max_epochs:
            raise UserError(f"--grace-period {grace_period}: expected an epoch count from 1 to the trials' "
                            f"{max_epochs} epochs (no trial is stopped before it has trained that many).")
        if not reduction_factor > 1:
            raise UserError(f"--reduction-factor {reduction_factor}: expected a number greater than 1 (3: a third "
                            "of the trials at each rung goes on).")
        try:
            from ray.tune.schedulers import ASHAScheduler
        except ImportError:
            raise UserError("--scheduler asha needs Ray Tune, which is not installed: pip install 'numpyml[tune]' "
                            "(or uv sync --extra tune in this project).") from None
        self.scheduler = ASHAScheduler(time_attr="epoch", metric=METRIC, mode="max", max_t=max_epochs,
                                       grace_period=grace_period, reduction_factor=reduction_factor,
                                       stop_last_trials=False)
        self.handles = {number: _TrialHandle(str(number)) for number in trial_numbers}
        for handle in self.handles.values():
            self.scheduler.on_trial_add(None, handle)
        self.epochs_seen = dict.fromkeys(trial_numbers, 0)
        #: trial number -> the epoch after which the scheduler stopped it
        self.stopped: dict[int, int] = {}
        self._ended: set[int] = set()

    def replay(self, number: int, run_dir: Path) -> None:
        """Give the scheduler the epochs of trial ``number``, which ended before this command (finished, or
        stopped early by an earlier one): its results count at the rungs, and it is never stopped now."""
        self.poll(number, run_dir)
        self.stopped.pop(number, None)
        self._ended.add(number)

    def poll(self, number: int, run_dir: Path) -> int | None:
        """Give the scheduler the epochs trial ``number`` finished since the last call; the epoch at which it
        stops the trial, else ``None`` (also for a trial already stopped: it is stopped once)."""
        if number in self.stopped or number in self._ended:
            return None
        try:
            metrics = RunFolder(run_dir).read_metrics()
        except UserError:
            return None  # being written or damaged: the trial's own end says what happened
        epochs, values = metrics.get("epoch", []), metrics.get(METRIC, [])
        for index in range(self.epochs_seen[number], min(len(epochs), len(values))):
            self.epochs_seen[number] = index + 1
            if not math.isfinite(values[index]):
                continue
            result = {"epoch": int(epochs[index]), METRIC: values[index]}
            if self.scheduler.on_trial_result(None, self.handles[number], result) == "STOP":
                self.stopped[number] = int(epochs[index])
                return self.stopped[number]
        return None
