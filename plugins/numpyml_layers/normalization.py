"""Batch normalization."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._util import as_float, component_from_spec, match_dtype, one_blas_thread, require_forward


class BatchNorm:
    """Batch normalization over the last axis (features of a dense output, channels of an NHWC
    image): ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``.

    Parameters (Keras names):

    * ``momentum``: of the running statistics, Keras's convention:
      ``moving = momentum * moving + (1 - momentum) * batch`` (PyTorch's ``momentum`` is
      ``1 - this``).
    * ``epsilon``: added to the variance.
    * ``center`` / ``scale``: learn ``beta`` / ``gamma``.
    * ``gamma_initializer`` / ``beta_initializer``: registered initializer names or tables.

    Training mode normalizes with the batch's mean and (biased) variance over every axis but the
    last and updates the running ``moving_mean`` and ``moving_variance`` (unbiased, like PyTorch);
    evaluation mode uses the running statistics. Those two are in ``state``, saved with the model
    (updated in place, never rebound). Shapes: input and output ``(N, ..., C)``; ``params``
    ``gamma`` and ``beta`` ``(C,)``. Caches the normalized input and ``1 / sqrt(var + epsilon)``.
    """

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        gamma_initializer: str | dict = "ones",
        beta_initializer: str | dict = "zeros",
    ) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be greater than 0, got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.gamma_initializer: Any = component_from_spec("initializer", gamma_initializer, "gamma_initializer")
        self.beta_initializer: Any = component_from_spec("initializer", beta_initializer, "beta_initializer")
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._training = False

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        input_shape = tuple(input_shape)
        if not input_shape or any(d < 1 for d in input_shape):
            raise ValueError(f"batch_norm needs a positive per-sample shape, got {input_shape}")
        channels = input_shape[-1]
        self.input_shape = input_shape
        self.params = {}
        if self.scale:
            self.params["gamma"] = np.asarray(self.gamma_initializer((channels,), rng, np.float32), dtype=np.float32)
        if self.center:
            self.params["beta"] = np.asarray(self.beta_initializer((channels,), rng, np.float32), dtype=np.float32)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.state = {
            "moving_mean": np.zeros(channels, dtype=np.float32),
            "moving_variance": np.ones(channels, dtype=np.float32),
        }
        return input_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise ValueError(f"batch_norm was built for samples of shape {self.input_shape}, got {x.shape[1:]}")
        channels = x.shape[-1]
        flat = x.reshape(-1, channels)
        count = flat.shape[0]
        self._training = training
        if training:
            ones = np.ones(count, dtype=x.dtype)
            with one_blas_thread():  # as every product of a training step (docs/layers.md)
                mean = (ones @ flat) / count  # a BLAS product: fast and accurately accumulated
            centered = x - mean
            centered_flat = centered.reshape(-1, channels)
            var = np.einsum("ij,ij->j", centered_flat, centered_flat) / count
            inv_std = 1.0 / np.sqrt(var + self.epsilon)
            moving_mean, moving_var = self.state["moving_mean"], self.state["moving_variance"]
            unbiased = var * (count / max(count - 1, 1))
            moving_mean *= self.momentum
            moving_mean += ((1 - self.momentum) * mean).astype(moving_mean.dtype)
            moving_var *= self.momentum
            moving_var += ((1 - self.momentum) * unbiased).astype(moving_var.dtype)
            xhat = centered
            xhat *= inv_std
        else:
            mean = match_dtype(self.state["moving_mean"], x.dtype)
            inv_std = 1.0 / np.sqrt(match_dtype(self.state["moving_variance"], x.dtype) + x.dtype.type(self.epsilon))
            xhat = x - mean
            xhat *= inv_std
        self._xhat = xhat
        self._inv_std = inv_std.astype(x.dtype)
        y = xhat * match_dtype(self.params["gamma"], x.dtype) if self.scale else xhat.copy()
        if self.center:
            y += match_dtype(self.params["beta"], x.dtype)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._xhat, self)
        channels = dy.shape[-1]
        dy_flat = dy.reshape(-1, channels)
        count = dy_flat.shape[0]
        xhat = self._xhat
        self._xhat = None
        gamma = match_dtype(self.params["gamma"], dy.dtype) if self.scale else dy.dtype.type(1)
        with one_blas_thread():
            dbeta = np.ones(count, dtype=dy.dtype) @ dy_flat
        dgamma = np.einsum("ij,ij->j", xhat.reshape(-1, channels), dy_flat)
        if self.center:
            self._store("beta", dbeta)
        if self.scale:
            self._store("gamma", dgamma)
        if not self._training:  # the running statistics are constants: an affine map
            return dy * (gamma * self._inv_std)
        # dx = gamma * inv_std / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))
        dx = xhat
        dx *= dgamma / count
        dx += dbeta / count
        np.subtract(dy, dx, out=dx)
        dx *= gamma * self._inv_std
        return dx

    def _store(self, name: str, value: np.ndarray) -> None:
        grad = self.grads[name]
        if grad.dtype == value.dtype:
            grad[...] = value
        else:
            self.grads[name] = value

    def __repr__(self) -> str:
        return f"BatchNorm(momentum={self.momentum}, epsilon={self.epsilon}, center={self.center}, scale={self.scale})"
