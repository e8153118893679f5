"""The ``data_initialization`` callback: layers that initialize themselves from training data."""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyml_core import hookimpl


class DataInitialization:
    """Before the first batch of a new run, call ``initialize_from_data(x)`` on every layer that has
    that method (``patch_whitening``), in order, with ``x`` the layer's input for the first
    ``samples`` images of ``split`` (not augmented; pushed through the layers before it in
    evaluation mode, ``batch_size`` at a time, after the earlier layers were initialized).

    The layers are initialized once: a resumed run has their state from the checkpoint (the
    callback's ``state_dict`` records that it ran), and a model file keeps it. The layer's input
    for all ``samples`` images is held in memory at once (5,000 CIFAR images: 61 MB as float32 for
    a first layer).
    """

    def __init__(self, samples: int = 5000, split: str = "train", batch_size: int = 500) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.samples = samples
        self.split = split
        self.batch_size = batch_size
        self.done = False
        #: indices (into the model's layers) of the layers initialized, for reports and tests
        self.initialized: list[int] = []

    @hookimpl
    def numpyml_on_run_start(self, run: Any) -> None:
        if self.done or run.step > 0:
            return
        layers = run.model.layers
        targets = [i for i, layer in enumerate(layers) if callable(getattr(layer, "initialize_from_data", None))]
        if targets and self.split not in run.splits:
            raise ValueError(f"data_initialization: no split '{self.split}'; this run has {sorted(run.splits)}")
        for index in targets:
            split = run.splits[self.split]
            n = min(self.samples, len(split))
            chunks = []
            for start in range(0, n, self.batch_size):
                x, _ = split.batch(np.arange(start, min(start + self.batch_size, n)))
                for layer in layers[:index]:
                    x = layer.forward(x, False)
                chunks.append(x)
            layers[index].initialize_from_data(np.concatenate(chunks))
            self.initialized.append(index)
        self.done = True

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = bool(state.get("done", False))

    def __repr__(self) -> str:
        return f"DataInitialization(samples={self.samples}, split={self.split!r}, batch_size={self.batch_size})"
