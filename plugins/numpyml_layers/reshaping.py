"""Layers that only change the per-sample shape."""

from __future__ import annotations

import math

import numpy as np

from ._util import require_forward


class Flatten:
    """Flattens every sample to a vector: input ``(N, *shape)``, output ``(N, prod(shape))``.

    No parameters; caches the input shape.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None
        self._batch_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        input_shape = tuple(input_shape)
        if any(d < 1 for d in input_shape):
            raise ValueError(f"flatten needs positive dimensions, got shape {input_shape}")
        self.input_shape = input_shape
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise ValueError(f"flatten was built for samples of shape {self.input_shape}, got {x.shape[1:]}")
        self._batch_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._batch_shape, self)
        return dy.reshape(self._batch_shape)


class Reshape:
    """Reshapes every sample to ``target_shape`` (without the batch axis; one entry may be -1,
    inferred from the size).

    Input ``(N, *input_shape)``, output ``(N, *target_shape)``; the sizes must match. No
    parameters.
    """

    def __init__(self, target_shape: list[int]) -> None:
        target_shape = tuple(target_shape)
        if not target_shape:
            raise ValueError("target_shape must list at least one dimension")
        if any(isinstance(d, bool) or not isinstance(d, int) for d in target_shape):
            raise ValueError(f"target_shape must be a list of integers, got {list(target_shape)}")
        if any(d < 1 and d != -1 for d in target_shape):
            raise ValueError(f"target_shape entries must be positive (or one -1), got {list(target_shape)}")
        if target_shape.count(-1) > 1:
            raise ValueError(f"target_shape may contain at most one -1, got {list(target_shape)}")
        self.target_shape = target_shape
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        input_shape = tuple(input_shape)
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(
                    f"reshape cannot turn input of shape {input_shape} ({size} values) into "
                    f"{list(self.target_shape)}: {size} is not a multiple of {known}"
                )
            output_shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        else:
            if size != known:
                raise ValueError(
                    f"reshape cannot turn input of shape {input_shape} ({size} values) into "
                    f"{list(self.target_shape)} ({known} values)"
                )
            output_shape = self.target_shape
        self.input_shape = input_shape
        self.output_shape = output_shape
        return output_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if self.output_shape is None:
            raise RuntimeError("Reshape.forward() called before build()")
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"reshape was built for samples of shape {self.input_shape}, got {x.shape[1:]}")
        return x.reshape((x.shape[0], *self.output_shape))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.input_shape is None:
            raise RuntimeError("Reshape.backward() called before build()")
        return dy.reshape((dy.shape[0], *self.input_shape))
