"""Weight averaging callbacks: ``ema`` (an exponential moving average of the weights) and
``lookahead`` (the same average written back into the network, airbench's variant)."""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyml_core import hookimpl

from .evaluation import evaluate_split


class EMA:
    """An exponential moving average of the network's weights, updated every ``every`` optimizer
    steps: ``average <- average + (1 - d) * (weights - average)``.

    * ``decay`` (in ``[0, 1)``): ``d`` per update. With ``warmup_power = p > 0``, ``d`` is
      ``decay * (step / total_steps) ** p`` (airbench's cubic ramp: ``p = 3``), so the average
      follows the weights closely at first.
    * ``every`` (>= 1): optimizer steps between updates (the per-update ``decay`` is then roughly
      ``per_step_decay ** every``).
    * ``include_state``: average the layers' ``state`` too (batch-norm running statistics), as
      averaging a PyTorch ``state_dict`` does.
    * ``lookahead``: after each update, copy the average into the network (Zhang et al.'s lookahead
      with an EMA slow copy; what airbench's ``LookaheadState`` does); the evaluations of every
      epoch then see it without further ado.
    * ``use_at_end``: when training ends, load the average into the network, so ``model.safetensors``
      and the final figures' model hold it (the final figures in ``summary.json`` are those of the
      last epoch's evaluation, taken before: with ``evaluate``, they are the ``ema_`` columns).
    * ``evaluate`` (without ``lookahead``): after every epoch, also evaluate the average on the
      run's evaluation splits, adding ``ema_<split>_loss`` and ``ema_<split>_accuracy`` to
      metrics.csv (the training weights are put back afterwards, bit for bit).

    The average (float32, one array per parameter and state array) and the update count are the
    callback's ``state_dict``: checkpoints carry them, so a resumed run continues bitwise as if
    uninterrupted. Updates run first among the callbacks at the end of a batch (``tryfirst``),
    before any checkpoint of that batch is written. Made for ``serial`` and ``sync`` strategies
    (an asynchronous strategy's workers would not see a lookahead's write-back at once).
    """

    def __init__(self, decay: float = 0.99, every: int = 1, warmup_power: float = 0.0, include_state: bool = True,
                 lookahead: bool = False, use_at_end: bool = True, evaluate: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if not warmup_power >= 0:
            raise ValueError(f"warmup_power must be at least 0, got {warmup_power}")
        if lookahead and evaluate:
            raise ValueError("evaluate = true needs lookahead = false (with lookahead the network holds the "
                             "average, and every evaluation already sees it)")
        self.decay = float(decay)
        self.every = every
        self.warmup_power = float(warmup_power)
        self.include_state = bool(include_state)
        self.lookahead = bool(lookahead)
        self.use_at_end = bool(use_at_end)
        self.evaluate = bool(evaluate)
        self.average: dict[str, np.ndarray] = {}
        self.updates = 0
        self._work: dict[str, np.ndarray] = {}

    # -- the average -------------------------------------------------------------------------------
    def _tensors(self, run: Any) -> dict[str, np.ndarray]:
        tensors = dict(run.model.params())
        if self.include_state:
            tensors.update(run.model.state())
        return tensors

    def current_decay(self, step: int, total_steps: int) -> float:
        """``d`` for an update after ``step`` optimizer steps of ``total_steps``."""
        if not self.warmup_power:
            return self.decay
        return self.decay * min(1.0, step / max(total_steps, 1)) ** self.warmup_power

    def update(self, tensors: dict[str, np.ndarray], decay: float) -> None:
        """One update of the average towards ``tensors`` (and, with ``lookahead``, back into them)."""
        for name, weight in tensors.items():
            average = self.average[name]
            work = self._work.get(name)
            if work is None or work.shape != average.shape:
                work = self._work[name] = np.empty_like(average)
            np.subtract(weight, average, out=work, casting="same_kind")
            work *= np.float32(1.0 - decay)
            average += work
            if self.lookahead:
                weight[...] = average
        self.updates += 1

    # -- hooks -------------------------------------------------------------------------------------
    @hookimpl
    def numpyml_on_run_start(self, run: Any) -> None:
        tensors = self._tensors(run)
        if not self.average:  # a fresh run (a resumed one has its average from the checkpoint)
            self.average = {name: np.array(value, dtype=np.float32, copy=True) for name, value in tensors.items()}
            return
        if sorted(self.average) != sorted(tensors):
            raise ValueError(f"ema: the saved average holds {sorted(self.average)} but the network has "
                             f"{sorted(tensors)}")

    @hookimpl(tryfirst=True)
    def numpyml_on_batch_end(self, run: Any) -> None:
        if run.step % self.every:
            return
        total = run.spec.training.epochs * run.batches_per_epoch
        self.update(self._tensors(run), self.current_decay(run.step, total))

    @hookimpl(tryfirst=True)
    def numpyml_on_epoch_end(self, run: Any, metrics: dict) -> None:
        if not self.evaluate:
            return
        with self.swapped_in(run):
            for name in run.eval_splits:
                result = evaluate_split(run.model, run.cost, run.splits[name], run.spec.training.eval_batch_size)
                metrics[f"ema_{name}_loss"] = result["loss"]
                metrics[f"ema_{name}_accuracy"] = result["accuracy"]

    @hookimpl(tryfirst=True)
    def numpyml_on_run_end(self, run: Any) -> None:
        if self.use_at_end and self.average:
            for name, weight in self._tensors(run).items():
                weight[...] = self.average[name]

    def swapped_in(self, run: Any) -> "_Swap":
        """A context in which the network holds the average (its own weights are restored after)."""
        return _Swap(self._tensors(run), self.average)

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"updates": self.updates}
        state.update({f"average.{name}": value.copy() for name, value in self.average.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))
        self.average = {key[len("average."):]: np.array(value, dtype=np.float32, copy=True)
                        for key, value in state.items() if key.startswith("average.")}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(decay={self.decay}, every={self.every}, warmup_power={self.warmup_power}, "
                f"include_state={self.include_state}, lookahead={self.lookahead}, use_at_end={self.use_at_end}, "
                f"evaluate={self.evaluate})")


class Lookahead(EMA):
    """``ema`` with ``lookahead = true`` and airbench94's settings as defaults: every 5 steps, the
    average moves towards the weights with ``d = 0.95**5 * (step / total_steps)**3`` and is then
    copied into the network; at the end the network holds the average. See ``ema`` for every
    parameter, the checkpointed state and exact resume."""

    def __init__(self, decay: float = 0.95 ** 5, every: int = 5, warmup_power: float = 3.0,
                 include_state: bool = True, use_at_end: bool = True) -> None:
        super().__init__(decay=decay, every=every, warmup_power=warmup_power, include_state=include_state,
                         lookahead=True, use_at_end=use_at_end, evaluate=False)


class _Swap:
    def __init__(self, tensors: dict[str, np.ndarray], replacement: dict[str, np.ndarray]) -> None:
        self.tensors = tensors
        self.replacement = replacement
        self.saved: dict[str, np.ndarray] = {}

    def __enter__(self) -> None:
        self.saved = {name: value.copy() for name, value in self.tensors.items()}
        for name, value in self.tensors.items():
            value[...] = self.replacement[name]

    def __exit__(self, *exc: Any) -> None:
        for name, value in self.tensors.items():
            value[...] = self.saved[name]
