"""Swish (Ramachandran et al. 2017, also called SiLU): ``y = x * sigmoid(beta * x)``."""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function without overflow for any ``z``, in ``z``'s float dtype."""
    e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


class Swish:
    """Swish activation, ``y = x * sigmoid(beta * x)`` with a fixed ``beta``.

    * ``beta``: the slope inside the sigmoid; 1 gives SiLU, large values approach relu, 0 gives x/2.

    Input and output ``(N, *shape)`` in the input's float dtype; no parameters. Caches the input and
    ``sigmoid(beta * x)``. ``dy/dx = s + beta * x * s * (1 - s)``.
    """

    fusable_as = None  # not a probability head

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = float(beta)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        beta = x.dtype.type(self.beta)
        s = sigmoid(beta * x)
        self._cache = (x, s)
        return x * s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("Swish.backward() called before forward()")
        x, s = self._cache
        beta = x.dtype.type(self.beta)
        return dy * (s + beta * x * s * (1 - s))

    def __repr__(self) -> str:
        return f"Swish(beta={self.beta})"


class LearnedSwish:
    """Swish with one trainable ``beta`` per feature (the last axis): ``y = x * sigmoid(beta * x)``.

    * ``initial_beta``: the starting value of every ``beta``.

    Shapes: input ``(N, ..., C)``, output the same; ``params`` is ``beta`` ``(C,)`` (float32).
    Caches the input and ``sigmoid(beta * x)``. ``dy/dbeta = x^2 * s * (1 - s)``, summed over every
    axis but the last.
    """

    def __init__(self, initial_beta: float = 1.0) -> None:
        self.initial_beta = float(initial_beta)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        self.params = {"beta": np.full(input_shape[-1], self.initial_beta, dtype=np.float32)}
        self.grads = {"beta": np.zeros_like(self.params["beta"])}
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        beta = self.params["beta"].astype(x.dtype, copy=False)
        s = sigmoid(beta * x)
        self._cache = (x, s)
        return x * s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("LearnedSwish.backward() called before forward()")
        x, s = self._cache
        beta = self.params["beta"].astype(x.dtype, copy=False)
        slope = s * (1 - s)
        axes = tuple(range(dy.ndim - 1))
        self.grads["beta"][...] = np.sum(dy * x * x * slope, axis=axes)  # in place: same array
        return dy * (s + beta * x * slope)

    def __repr__(self) -> str:
        return f"LearnedSwish(initial_beta={self.initial_beta})"
