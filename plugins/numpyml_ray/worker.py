"""The Ray actor that computes gradients: a replica of the model built from the experiment.

Imported only inside Ray worker processes (and by the strategies once Ray is running).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np


class GradientWorker:
    """Holds a model replica and the training split; computes gradients of index batches.

    The training split's arrays arrive once, as object-store references resolved by Ray when the
    actor is created; every call then carries only the parameters (one object-store reference per
    step, shared by all workers) and the batch's indices.
    """

    def __init__(self, spec_table: dict[str, Any], source: str, input_shape: tuple[int, ...], seed: int,
                 train: Any, index: int) -> None:
        from numpyml_core import get_plugin_manager
        from numpyml_core.plugin_api import build_model, parse_experiment

        manager = get_plugin_manager()
        spec = parse_experiment(spec_table, source, manager.registry)
        # a worker-specific stream for dropout: replicas must not drop the same units
        self.model = build_model(spec, manager, tuple(input_shape), np.random.default_rng([seed, index, 1]))
        self.cost = manager.create("cost", spec.cost.type, **dict(spec.cost.params))
        self.split = train  # the run's training split (a Split), shipped once through the object store
        self.index = index
        self.params = self.model.params()

    def where(self) -> dict[str, Any]:
        """Host and process of this worker (for messages and tests)."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "node": _node_id(),
                "blas": os.environ.get("OPENBLAS_NUM_THREADS")}

    def gradient(self, weights: dict[str, dict[str, np.ndarray]], indices: np.ndarray | None,
                 x: np.ndarray | None = None, y: np.ndarray | None = None
                 ) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray], int]:
        """Mean loss, gradients and the layer state after the batch (running statistics), for a
        batch given by indices (or as arrays when it was augmented in the trainer).

        ``weights``: ``{"params": {...}, "state": {...}}`` as the parameter owner holds them.
        """
        for name, value in weights["params"].items():
            np.copyto(self.params[name], value)
        state = self.model.state()
        for name, value in weights["state"].items():
            np.copyto(state[name], value)
        if x is None:
            x, y = self.split.batch(indices)
        loss = self.model.loss_and_gradients(x, y, self.cost)
        grads = {name: value.copy() for name, value in self.model.grads().items()}
        new_state = {name: value.copy() for name, value in self.model.state().items()}
        return loss, grads, new_state, len(y)


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - informational only
        return ""
