"""Learning-rate schedules: constant, step decay, cosine (with warm-up) and one-cycle.

A schedule is called before every optimizer step as ``schedule(step, epoch, base_learning_rate)``
(``step`` counts optimizer steps from 0, ``epoch`` epochs from 0, ``base_learning_rate`` is the
optimizer's configured ``learning_rate``) and returns the learning rate for that step. Schedules
that depend on the length of the run (cosine, one-cycle) are given it once by the trainer through
``bind(total_steps, steps_per_epoch)``. Every schedule is a pure function of its arguments and of
what ``bind`` gave it, so a resumed run gets exactly the rates it would have had.
"""

from __future__ import annotations

import math
from typing import Literal


class _Bound:
    """Holds the run length given by ``bind``; subclasses call ``self._length()``."""

    name = ""

    def __init__(self) -> None:
        self.total_steps: int | None = None
        self.steps_per_epoch: int | None = None

    def bind(self, total_steps: int, steps_per_epoch: int) -> None:
        if total_steps < 1 or steps_per_epoch < 1:
            raise ValueError(f"{self.name}: total_steps and steps_per_epoch must be at least 1, got "
                             f"{total_steps} and {steps_per_epoch}")
        self.total_steps = int(total_steps)
        self.steps_per_epoch = int(steps_per_epoch)

    def _length(self) -> tuple[int, int]:
        if self.total_steps is None or self.steps_per_epoch is None:
            raise RuntimeError(
                f"the {self.name} schedule needs the length of the run: call bind(total_steps, steps_per_epoch) "
                "first (the trainer does this before training)"
            )
        return self.total_steps, self.steps_per_epoch


class Constant:
    """The optimizer's ``learning_rate`` at every step (the same as no schedule)."""

    def __call__(self, step: int, epoch: int, base_learning_rate: float) -> float:
        return float(base_learning_rate)

    def __repr__(self) -> str:
        return "Constant()"


class StepDecay:
    """Multiply the learning rate by ``gamma`` at epoch boundaries: every ``step_size`` epochs,
    or at each epoch listed in ``milestones`` (epochs counted from 0: ``milestones = [30, 60]``
    gives ``base`` for epochs 0-29, ``base * gamma`` for 30-59, ``base * gamma**2`` after). Give
    exactly one of ``step_size`` and ``milestones``.

    ``lr = base * gamma ** k`` with ``k = epoch // step_size`` or ``k`` = the number of
    milestones ``<= epoch``.
    """

    def __init__(self, step_size: int | None = None, gamma: float = 0.1, milestones: list[int] | None = None) -> None:
        if (step_size is None) == (milestones is None):
            raise ValueError("give exactly one of step_size (decay every step_size epochs) and milestones "
                             "(decay at these epochs)")
        if step_size is not None and (isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1):
            raise ValueError(f"step_size must be a positive number of epochs, got {step_size!r}")
        if milestones is not None:
            if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in milestones) or not milestones:
                raise ValueError(f"milestones must be a non-empty list of positive epoch numbers, got {milestones!r}")
            if list(milestones) != sorted(set(milestones)):
                raise ValueError(f"milestones must be strictly increasing, got {milestones!r}")
        if not gamma > 0:
            raise ValueError(f"gamma must be greater than 0, got {gamma}")
        self.step_size = step_size
        self.gamma = float(gamma)
        self.milestones = None if milestones is None else [int(m) for m in milestones]

    def __call__(self, step: int, epoch: int, base_learning_rate: float) -> float:
        if self.milestones is not None:
            k = sum(1 for m in self.milestones if epoch >= m)
        else:
            k = epoch // self.step_size
        return float(base_learning_rate) * self.gamma ** k

    def __repr__(self) -> str:
        return f"StepDecay(step_size={self.step_size}, gamma={self.gamma}, milestones={self.milestones})"


class Cosine(_Bound):
    """Cosine decay from the optimizer's ``learning_rate`` to ``min_learning_rate`` over the run,
    per step, after an optional linear warm-up of ``warmup_epochs`` (may be fractional).

    With ``W = round(warmup_epochs * steps_per_epoch)`` warm-up steps and ``T`` steps in all::

        step < W:   lr = base * (step + 1) / W
        otherwise:  lr = min + (base - min) * (1 + cos(pi * (step - W) / (T - W))) / 2
    """

    name = "cosine"

    def __init__(self, warmup_epochs: float = 0.0, min_learning_rate: float = 0.0) -> None:
        super().__init__()
        if not warmup_epochs >= 0:
            raise ValueError(f"warmup_epochs must be at least 0, got {warmup_epochs}")
        if not min_learning_rate >= 0:
            raise ValueError(f"min_learning_rate must be at least 0, got {min_learning_rate}")
        self.warmup_epochs = float(warmup_epochs)
        self.min_learning_rate = float(min_learning_rate)

    def warmup_steps(self) -> int:
        total, per_epoch = self._length()
        return min(int(round(self.warmup_epochs * per_epoch)), total - 1)

    def __call__(self, step: int, epoch: int, base_learning_rate: float) -> float:
        total, _ = self._length()
        base = float(base_learning_rate)
        warmup = self.warmup_steps()
        if step < warmup:
            return base * (step + 1) / warmup
        progress = min(max((step - warmup) / (total - warmup), 0.0), 1.0)
        return self.min_learning_rate + (base - self.min_learning_rate) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def __repr__(self) -> str:
        return f"Cosine(warmup_epochs={self.warmup_epochs}, min_learning_rate={self.min_learning_rate})"


class OneCycle(_Bound):
    """One cycle (Smith & Topin, 2018): rise from ``base / div_factor`` to the optimizer's
    ``learning_rate`` (the peak) over the first ``peak_fraction`` of the run's steps, then anneal
    to ``base / div_factor / final_div_factor`` at the last step; per step.

    ``anneal``: ``"linear"`` or ``"cosine"`` (half a cosine), for both phases. With ``T`` steps,
    ``P = peak_fraction * (T - 1)`` (the peak step, may be fractional), ``start = base / div_factor``
    and ``end = start / final_div_factor``::

        step <= P:  lr = interpolate(start, base, step / P)
        otherwise:  lr = interpolate(base, end, (step - P) / (T - 1 - P))

    where ``interpolate(a, b, f)`` is ``a + (b - a) * f`` (linear) or
    ``b + (a - b) * (1 + cos(pi * f)) / 2`` (cosine).
    """

    name = "one_cycle"

    def __init__(self, peak_fraction: float = 0.3, anneal: Literal["linear", "cosine"] = "cosine",
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> None:
        super().__init__()
        if not 0.0 <= peak_fraction < 1.0:
            raise ValueError(f"peak_fraction must be in [0, 1), got {peak_fraction}")
        if anneal not in ("linear", "cosine"):
            raise ValueError(f'anneal must be "linear" or "cosine", got {anneal!r}')
        if not div_factor >= 1:
            raise ValueError(f"div_factor must be at least 1, got {div_factor}")
        if not final_div_factor >= 1:
            raise ValueError(f"final_div_factor must be at least 1, got {final_div_factor}")
        self.peak_fraction = float(peak_fraction)
        self.anneal = anneal
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    def _interpolate(self, a: float, b: float, fraction: float) -> float:
        fraction = min(max(fraction, 0.0), 1.0)
        if self.anneal == "linear":
            return a + (b - a) * fraction
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * fraction))

    def __call__(self, step: int, epoch: int, base_learning_rate: float) -> float:
        total, _ = self._length()
        peak = float(base_learning_rate)
        start = peak / self.div_factor
        end = start / self.final_div_factor
        last = total - 1
        peak_step = self.peak_fraction * last
        if last == 0:
            return peak
        if step <= peak_step:
            return self._interpolate(start, peak, step / peak_step) if peak_step > 0 else peak
        return self._interpolate(peak, end, (step - peak_step) / (last - peak_step))

    def __repr__(self) -> str:
        return (f"OneCycle(peak_fraction={self.peak_fraction}, anneal={self.anneal!r}, "
                f"div_factor={self.div_factor}, final_div_factor={self.final_div_factor})")
