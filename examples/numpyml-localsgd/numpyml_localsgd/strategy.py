"""The ``local_sgd`` update strategy: ``workers`` replicas take ``local_steps`` steps each, then average.

Written with numpyml's public plugin API only (``numpyml_core`` and ``numpyml_core.plugin_api``), as
docs/plugins.md ("Writing an update strategy") walks through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyml_core import create
from numpyml_core.plugin_api import GradientWorker, Update, share_ranges


class LocalSGD:
    """Local SGD (Stich, "Local SGD Converges Fast and Communicates Little", ICLR 2019; Lin et al.,
    "Don't Use Large Mini-Batches, Use Local SGD", ICLR 2020).

    ``workers`` replicas of the network start from ``run.model``'s parameters. Every mini-batch is
    split into ``workers`` shares (as ``sync`` splits it); replica ``k`` takes one step of its own
    optimizer (a fresh copy of the experiment's ``[optimizer]``) on share ``k``. After ``local_steps``
    batches (and at the end of every epoch) the round ends: the replicas' parameters are averaged,
    weighted by the samples each saw, and the average becomes ``run.model``'s parameters through the
    trainer's one update path: ``run.apply_update`` with the outer gradient
    ``(w - mean_k w_k) / learning_rate``, which a plain ``sgd`` step turns into exactly the average
    (with momentum or ``adam`` it is an outer optimizer, as in DiLoCo). Layer state (batch-norm
    statistics) is averaged the same way, by the trainer's rule. Every replica then starts the next
    round from ``run.model``.

    With ``local_steps = 1`` and plain ``sgd`` this is ``sync`` (the run follows ``serial`` up to
    float rounding); more local steps communicate ``local_steps`` times less often. The replicas run
    one after another in this process: this strategy shows the algorithm and the plugin contract;
    running them in worker processes is the transport's business (see the ``sync`` strategy).

    ``numpyml_before_update`` sees the outer gradient, once per round; the replicas' local steps
    call no hook. A checkpoint written mid-epoch holds ``run.model`` without the round in progress (and
    not the replicas' optimizer state: with momentum, a resumed round starts it afresh).
    """

    def __init__(self, workers: int = 4, local_steps: int = 4) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if isinstance(local_steps, bool) or not isinstance(local_steps, int) or local_steps < 1:
            raise ValueError(f"local_steps must be a positive integer, got {local_steps!r}")
        self.workers = workers
        self.local_steps = local_steps
        self.replicas: list[GradientWorker] = []
        self.optimizers: list[Any] = []

    def setup(self, run: Any) -> None:
        spec = run.spec
        self.replicas = [GradientWorker(spec, run.model.input_shape, [spec.seed, 7, k]) for k in range(self.workers)]
        self.optimizers = [create("optimizer", spec.optimizer.type, **dict(spec.optimizer.params))
                           for _ in range(self.workers)]
        self._start_round(run)

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float:
        loss = 0.0
        for k, (start, stop) in enumerate(share_ranges(len(x), self.workers)):
            replica, optimizer = self.replicas[k], self.optimizers[k]
            optimizer.learning_rate = run.optimizer.learning_rate  # follows a schedule
            loss += (stop - start) / len(x) * replica.gradients(x[start:stop], y[start:stop])
            optimizer.step(replica.model.params(), replica.model.grads())
            self.samples[k] += stop - start
        self.steps += 1
        if self.steps == self.local_steps:
            self._average(run)
        return loss

    def end_epoch(self, run: Any) -> list[float]:
        if self.steps:  # evaluation sees the average of the round in progress
            self._average(run)
        return []

    def teardown(self, run: Any) -> None:
        self.replicas, self.optimizers = [], []

    # -- rounds ------------------------------------------------------------------------------------
    def _start_round(self, run: Any) -> None:
        """Every replica starts from run.model's parameters and layer state."""
        self.before = {name: value.copy() for name, value in run.model.state().items()}
        for replica in self.replicas:
            for mine, theirs in ((replica.model.params(), run.model.params()), (replica.model.state(), self.before)):
                for name, value in theirs.items():
                    np.copyto(mine[name], value)
        self.samples = [0] * self.workers
        self.steps = 0

    def _average(self, run: Any) -> None:
        """One update: run.model's parameters become the replicas' weighted average."""
        total = sum(self.samples)
        weights = [n / total for n in self.samples]
        rate = run.optimizer.learning_rate
        grads = {}
        for name, value in run.model.params().items():
            average = sum(w * r.model.params()[name].astype(np.float64) for w, r in zip(weights, self.replicas))
            grads[name] = ((value - average) / rate).astype(value.dtype)
        state = [(self.before, r.model.state(), w) for w, r in zip(weights, self.replicas) if w > 0]
        run.apply_update(Update(grads, state=state))
        self._start_round(run)
