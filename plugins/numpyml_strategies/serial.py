"""The ``serial`` update strategy (see the ``numpyml_strategies`` package docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyml_core.plugin_api import Update


class Serial:
    """Compute the mini-batch gradient on ``run.model`` and hand it to the trainer (``run.apply_update``)."""

    def __init__(self) -> None:
        pass

    def setup(self, run: Any) -> None:
        pass

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float:
        loss = run.model.loss_and_gradients(x, y, run.cost)
        run.apply_update(Update(run.model.grads()))
        return loss

    def teardown(self, run: Any) -> None:
        pass
