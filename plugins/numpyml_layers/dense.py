"""The fully connected layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._util import as_float, component_from_spec, match_dtype, one_blas_thread, require_forward


class Dense:
    """Fully connected layer: ``y = activation(x @ weight + bias)``.

    Parameters:

    * ``units``: number of outputs, at least 1.
    * ``activation``: a registered activation name (``"relu"``) or a table
      ``{type = "leaky_relu", alpha = 0.1}``; none for a linear layer.
    * ``use_bias``: add a bias vector.
    * ``weight_initializer`` / ``bias_initializer``: a registered initializer name or a table
      ``{type = "gaussian", stddev = 0.05}``.

    Shapes: input ``(N, in)`` (flat: put a ``flatten`` layer after images), output ``(N, units)``;
    ``params`` are ``weight`` ``(in, units)`` and, with ``use_bias``, ``bias`` ``(units,)``.
    Caches the input (and the activation caches what it needs). ``backward`` writes the gradients
    into the existing ``grads`` arrays when their dtype matches.
    """

    def __init__(
        self,
        units: int,
        activation: str | dict | None = None,
        use_bias: bool = True,
        weight_initializer: str | dict = "xavier",
        bias_initializer: str | dict = "zeros",
    ) -> None:
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        self.units = units
        self.use_bias = bool(use_bias)
        #: the activation component, or ``None``; the model may set it to ``None`` after ``build``
        #: to apply a fusable head (softmax) itself, so it is read at every call.
        self.activation: Any = (
            None if activation is None else component_from_spec("activation", activation, "activation")
        )
        self.weight_initializer = component_from_spec("initializer", weight_initializer, "weight_initializer")
        self.bias_initializer = (
            component_from_spec("initializer", bias_initializer, "bias_initializer") if self.use_bias else None
        )
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._x: np.ndarray | None = None
        #: set to False by the model when this is the first trainable layer (no dx needed)
        self.input_gradient = True

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        input_shape = tuple(input_shape)
        if len(input_shape) != 1:
            raise ValueError(
                f"dense needs flat input (features,) per sample, got shape {input_shape}; "
                'add a layer with type = "flatten" before it'
            )
        (features,) = input_shape
        weight = np.asarray(self.weight_initializer((features, self.units), rng, np.float32), dtype=np.float32)
        self.params = {"weight": weight}
        if self.use_bias:
            bias = np.asarray(self.bias_initializer((self.units,), rng, np.float32), dtype=np.float32)
            self.params["bias"] = bias
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        if self.activation is not None and hasattr(self.activation, "build"):
            self.activation.build((self.units,), rng)
        return (self.units,)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        if x.ndim != 2:
            raise ValueError(f"dense expects a batch of flat inputs (N, features), got shape {x.shape}")
        weight = match_dtype(self.params["weight"], x.dtype)
        with one_blas_thread():
            z = x @ weight
        if self.use_bias:
            z += match_dtype(self.params["bias"], x.dtype)
        self._x = x
        if self.activation is not None:
            return self.activation.forward(z, training)
        return z

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._x, self)
        dz = self.activation.backward(dy) if self.activation is not None else dy
        x = self._x
        if self.use_bias:
            bias_grad = self.grads["bias"]
            if bias_grad.dtype == dz.dtype:
                np.sum(dz, axis=0, out=bias_grad)
            else:
                self.grads["bias"] = dz.sum(axis=0)
        weight_grad = self.grads["weight"]
        with one_blas_thread():
            if weight_grad.dtype == x.dtype == dz.dtype and weight_grad.shape == (x.shape[1], dz.shape[1]):
                np.matmul(x.T, dz, out=weight_grad)
            else:
                self.grads["weight"] = x.T @ dz
            if not self.input_gradient:  # first trainable layer: the model needs no dx
                return None
            return dz @ match_dtype(self.params["weight"], dz.dtype).T

    def __repr__(self) -> str:
        return f"Dense(units={self.units}, activation={self.activation!r}, use_bias={self.use_bias})"
