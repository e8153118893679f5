"""Interleaved spirals in the plane: a small data set a linear model cannot separate."""

from __future__ import annotations

import numpy as np

from numpyml_core.plugin_api import ArraySplit


class Spirals:
    """``classes`` spiral arms around the origin, one class each; generated, so no files needed.

    * ``classes``: number of arms, at least 2.
    * ``samples``: training samples; the test split has a quarter as many.
    * ``turns``: how far each arm winds (in full turns).
    * ``noise``: standard deviation of the angle noise (radians).
    * ``seed``: the data's own seed (independent of the experiment's).

    Samples are flat features ``(2,)``, float32 in about ``[-1, 1]``; labels are int64.
    """

    input_shape = (2,)

    def __init__(self, classes: int = 3, samples: int = 1500, turns: float = 0.75, noise: float = 0.15,
                 seed: int = 7) -> None:
        if classes < 2:
            raise ValueError(f"classes must be at least 2, got {classes}")
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        if not noise >= 0:
            raise ValueError(f"noise must be at least 0, got {noise}")
        self.num_classes = classes
        self.class_names = [f"arm{i}" for i in range(classes)]
        self.samples = samples
        self.turns = float(turns)
        self.noise = float(noise)
        self.seed = seed

    def _split(self, n: int, seed: int) -> ArraySplit:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, self.num_classes, size=n)
        radius = rng.uniform(0.05, 1.0, size=n)
        angle = 2 * np.pi * (y / self.num_classes + self.turns * radius) + rng.normal(0, self.noise, size=n)
        x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        return ArraySplit(x.astype(np.float32), y)

    def load(self, data_dir: str | None) -> dict[str, ArraySplit]:
        return {"train": self._split(self.samples, self.seed), "test": self._split(max(self.samples // 4, 1), self.seed + 1)}
