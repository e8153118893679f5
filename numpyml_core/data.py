"""Helpers for dataset plugins: :class:`ArraySplit` (a split held in memory) and :func:`data_dir_from_env`."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


class ArraySplit:
    """A split held as arrays, ``x`` (uint8 images or float features) and integer labels ``y``; ``batch(indices)``
    converts only those rows to float32: ``x * scale`` (default 1/255 for uint8, else 1), then with ``mean`` and
    ``std`` (scaled units, scalars or one per channel, the last axis) ``(x * scale - mean) / std``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, scale: float | None = None,
                 mean: float | Sequence[float] | np.ndarray | None = None,
                 std: float | Sequence[float] | np.ndarray | None = None):
        if len(x) != len(y):
            raise ValueError(f"{len(x)} inputs but {len(y)} labels")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std for normalization, or neither")
        self.x = x
        self.y = np.asarray(y, dtype=np.int64)
        self.scale = scale if scale is not None else (1.0 / 255.0 if x.dtype == np.uint8 else 1.0)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean is not None:
            channels = x.shape[-1] if x.ndim > 1 else 1
            for name, value in (("mean", self.mean), ("std", self.std)):
                if value.size not in (1, channels):
                    raise ValueError(f"{name} has {value.size} values but the inputs have {channels} channels "
                                     "(last axis)")
            if not np.all(self.std > 0):
                raise ValueError(f"std must be greater than 0, got {self.std.tolist()}")
            # (x * scale - mean) / std  ==  x * multiplier + offset, one fused pass per batch
            self._multiplier = (np.float32(self.scale) / self.std).astype(np.float32)
            self._offset = (-self.mean / self.std).astype(np.float32)

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.x[indices].astype(np.float32)
        if self.mean is not None:
            x *= self._multiplier
            x += self._offset
        elif self.scale != 1.0:
            x *= np.float32(self.scale)
        return x, self.y[indices]

    def subset(self, start: int, stop: int) -> "ArraySplit":
        return ArraySplit(self.x[start:stop], self.y[start:stop], self.scale, self.mean, self.std)


def data_dir_from_env() -> str | None:
    """``NUMPYML_DATA_DIR`` if set (the CLI's ``--data-dir`` takes precedence)."""
    return os.environ.get("NUMPYML_DATA_DIR", "").strip() or None
