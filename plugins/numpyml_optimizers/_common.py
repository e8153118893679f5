"""What every built-in update rule shares: argument checks, gradient checks, clipping by global
norm and scratch buffers."""

from __future__ import annotations

from typing import Mapping

import numpy as np


def check_common(learning_rate: float, l2: float, weight_decay: float, clip_norm: float | None) -> None:
    """``ValueError`` for the settings every rule has (the core turns it into a config error)."""
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be greater than 0, got {learning_rate}")
    if not l2 >= 0:
        raise ValueError(f"l2 must be at least 0, got {l2}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be at least 0, got {weight_decay}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be greater than 0 (or left out for no clipping), got {clip_norm}")


class UpdateRule:
    """Base of the built-in optimizers: subclasses set ``clip_norm`` and ``_scratch``."""

    clip_norm: float | None
    _scratch: dict[tuple[int, np.dtype], np.ndarray]

    @staticmethod
    def _check_gradients(params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Before any parameter changes: every parameter has a gradient of its shape."""
        missing = sorted(set(params) - set(grads))
        if missing:
            raise ValueError(f"no gradient for parameters {missing}")
        for name, weight in params.items():
            if grads[name].shape != weight.shape:
                raise ValueError(f"gradient of '{name}' has shape {grads[name].shape}, the parameter {weight.shape}")

    def _clip_scale(self, grads: Mapping[str, np.ndarray]) -> float:
        """The factor that brings the gradients' global L2 norm down to ``clip_norm`` (1 if below)."""
        if self.clip_norm is None:
            return 1.0
        squares = 0.0
        for grad in grads.values():
            flat = grad.reshape(-1)
            squares += float(np.dot(flat, flat))
        norm = squares ** 0.5
        return self.clip_norm / norm if norm > self.clip_norm else 1.0

    def _buffer(self, like: np.ndarray, slot: int) -> np.ndarray:
        """A scratch array shaped like ``like``: a view into one flat buffer per (slot, dtype),
        grown to the largest parameter, so a step allocates nothing after the first."""
        key = (slot, like.dtype)
        flat = self._scratch.get(key)
        if flat is None or flat.size < like.size:
            flat = self._scratch[key] = np.empty(like.size, dtype=like.dtype)
        return flat[: like.size].reshape(like.shape)
