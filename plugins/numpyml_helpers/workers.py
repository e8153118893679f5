"""For strategies that start workers: how many they may start (at most 4 per core, unless ``NUMPYML_MAX_WORKERS``
says otherwise; why: docs/parallel.md), and :class:`GradientWorker`, the replica of a run's network behind them."""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from numpyml_core import get_plugin_manager
from numpyml_core.plugin_api import build_model, shorten

#: workers allowed per core (``os.cpu_count()``) unless :data:`ENV` says otherwise
FACTOR = 4
#: the environment variable that replaces the limit
ENV = "NUMPYML_MAX_WORKERS"


def validate_worker_count(workers: object) -> None:
    """Raise ``ValueError`` unless ``workers`` is a positive integer within the limit."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {shorten(workers)}")
    cores = os.cpu_count() or 1
    value = os.environ.get(ENV, "").strip()
    try:
        limit = int(value) if value else FACTOR * cores
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"the environment variable {ENV} must be a positive integer (the most workers a "
                         f"strategy may start), got {shorten(value)}")
    if workers > limit:
        why = (f"the limit {ENV}={limit} set in the environment" if value
               else f"at most {limit}, {FACTOR} per core on this machine's {cores} cores")
        raise ValueError(
            f"workers = {workers} is more worker processes than allowed ({why}): each is a Python process "
            f"with its own copy of the network, and more than a few per core only slow the run down. Use "
            f"fewer, or set the environment variable {ENV} to a higher limit if you mean it."
        )


class GradientWorker:
    """A replica of a run's network for a strategy's workers (a process, a Ray actor: the transport is the
    strategy's), rebuilt from the experiment ``spec`` through the plugin manager; ``seed`` seeds its dropout.
    After :meth:`gradients`: the gradients in ``model.grads()``, the layer state after it in ``model.state()``."""

    def __init__(self, spec: Any, input_shape: tuple[int, ...], seed: Any):
        manager = get_plugin_manager()
        self.model = build_model(spec, manager, tuple(input_shape), np.random.default_rng(seed))
        self.cost = spec.cost.create(manager)

    def gradients(self, x: np.ndarray, y: np.ndarray, params: Mapping[str, np.ndarray] | None = None,
                  state: Mapping[str, np.ndarray] | None = None, scale: float = 1.0) -> float:
        """Copy ``params`` and ``state`` (by qualified name; an array the model computes on already is not
        copied) into the replica; return the mean loss of ``(x, y)``, leaving ``scale`` times its gradient."""
        for given, own in ((params, self.model.params()), (state, self.model.state())):
            for name, value in (given or {}).items():
                if own[name] is not value:
                    np.copyto(own[name], value)
        return self.model.loss_and_gradients(x, y, self.cost, scale=scale)
