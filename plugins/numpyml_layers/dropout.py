"""Dropout."""

from __future__ import annotations

import numpy as np

from ._util import as_float, require_forward


class Dropout:
    """Inverted dropout: while training, every value is zeroed with probability ``rate`` and the
    survivors are scaled by ``1 / (1 - rate)``, so evaluation (``training = False``) is the
    identity and needs no rescaling.

    * ``rate``: the fraction dropped, in ``[0, 1)``.

    Shapes: any, ``(N, *shape)`` in and out. No parameters. The masks are drawn from the generator
    ``build`` receives (the run's seeded initialization/dropout generator), so a run is
    reproducible from its seed. Caches the scaled mask (``None`` in evaluation).
    """

    def __init__(self, rate: float = 0.5) -> None:
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.rng: np.random.Generator | None = None
        self._mask: np.ndarray | None = None
        self._forwarded = False

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        self.rng = rng
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        self._forwarded = True
        if not training or self.rate == 0:
            self._mask = None
            return x
        if self.rng is None:
            raise RuntimeError("Dropout.forward() in training mode before build() gave it a generator")
        keep = self.rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        keep = keep >= self.rate  # P(keep) = 1 - rate
        mask = keep.astype(x.dtype)
        mask *= x.dtype.type(1.0 / (1.0 - self.rate))
        self._mask = mask
        return x * mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._forwarded or None, self)
        return dy if self._mask is None else dy * self._mask

    def __repr__(self) -> str:
        return f"Dropout(rate={self.rate})"
