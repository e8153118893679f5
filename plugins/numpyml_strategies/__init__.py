"""numpyml built-in plugin: update strategies (how gradients become parameter updates).

``serial`` is the default: one process computes the whole batch's gradient and applies one
optimizer step. Multi-core and distributed strategies plug into the same seam.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyml_core import hookimpl


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


@hookimpl
def numpyml_register_components(register):
    register("strategy", "serial", Serial)
