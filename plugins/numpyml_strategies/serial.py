"""The ``serial`` update strategy (see the ``numpyml_strategies`` package docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Serial:
    """Compute the mini-batch gradient in this process and apply one optimizer step."""

    def __init__(self) -> None:
        pass

    def setup(self, run: Any) -> None:
        pass

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float:
        loss = run.model.loss_and_gradients(x, y, run.cost)
        params = run.model.params()
        grads = run.model.grads()
        run.hooks.numpyml_before_update(run=run, params=params, grads=grads)
        run.optimizer.step(params, grads)
        return loss

    def teardown(self, run: Any) -> None:
        pass
