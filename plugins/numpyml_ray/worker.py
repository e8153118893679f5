"""The Ray actor that computes gradients: the public gradient worker on the Ray transport.

Imported only inside Ray worker processes (and by the strategies once Ray is running).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np

from numpyml_core.plugin_api import GradientWorker


class RayGradientWorker(GradientWorker):
    """:class:`numpyml_core.plugin_api.GradientWorker` (the one the local ``sync``/``async`` workers use
    too) holding the training split: computes gradients of index batches.

    The training split's arrays arrive once, as object-store references resolved by Ray when the
    actor is created; every call then carries only the parameters and layer state (one object-store
    reference per step, shared by all workers) and the batch's indices.
    """

    def __init__(self, spec_table: dict[str, Any], source: str, input_shape: tuple[int, ...], seed: int,
                 train: Any, index: int) -> None:
        from numpyml_core import get_plugin_manager
        from numpyml_core.plugin_api import parse_experiment

        spec = parse_experiment(spec_table, source, get_plugin_manager().registry)
        # a worker-specific stream for dropout: replicas must not drop the same units
        super().__init__(spec, input_shape, [seed, index, 1])
        self.split = train  # the run's training split (a Split), shipped once through the object store
        self.index = index

    def where(self) -> dict[str, Any]:
        """Host and process of this worker (for messages and tests)."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "node": _node_id(),
                "blas": os.environ.get("OPENBLAS_NUM_THREADS")}

    def compute(self, weights: dict[str, dict[str, np.ndarray]], indices: np.ndarray | None,
                x: np.ndarray | None = None, y: np.ndarray | None = None
                ) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray], int]:
        """Mean loss, gradients and the layer state after the batch (running statistics), for a
        batch given by indices (or as arrays when it was augmented in the trainer).

        ``weights``: ``{"params": {...}, "state": {...}}`` as the parameter owner holds them.
        """
        if x is None:
            x, y = self.split.batch(indices)
        loss = self.gradients(x, y, weights["params"], weights["state"])
        grads = {name: value.copy() for name, value in self.model.grads().items()}
        new_state = {name: value.copy() for name, value in self.model.state().items()}
        return loss, grads, new_state, len(y)


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - informational only
        return ""
