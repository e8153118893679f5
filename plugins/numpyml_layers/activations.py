"""Activations: element-wise (or per-sample) nonlinearities without parameters.

Every activation is a :class:`numpyml_core.protocols.Layer` (``params == grads == {}``, ``build``
returns the input shape unchanged) and is registered both as an ``activation`` (for
``dense(activation=...)``) and as a ``layer`` (for a standalone ``[[model.layers]]`` entry).
Outputs keep the input's dtype; every shape is ``(N, *input_shape)``.
"""

from __future__ import annotations

import math

import numpy as np

from ._util import as_float, require_forward


class Activation:
    """Base of the built-in activations: no parameters, shape-preserving."""

    #: name of a cost-fusable distribution this activation computes (only softmax sets it)
    fusable_as: str | None = None

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache: np.ndarray | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(input_shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Activation):
    """``y = x``. Input and output ``(N, *shape)``."""

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._cache = x
        return as_float(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        return dy


class Sigmoid(Activation):
    """Logistic function ``y = 1 / (1 + exp(-x))``, computed without overflow for any ``x``.

    Input and output ``(N, *shape)``; caches the output.
    """

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        # 1 / (1 + exp(-x)) in place, four passes: for x < -88 (float32) exp(-x) overflows to inf
        # and 1 / inf = 0 is the correctly rounded result, so the overflow is expected and silenced.
        y = np.negative(x)
        with np.errstate(over="ignore", under="ignore"):
            np.exp(y, out=y)
        y += 1
        np.reciprocal(y, out=y)
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        y = self._cache
        dx = np.subtract(1, y, dtype=y.dtype)  # dy * y * (1 - y), two temporaries fewer
        dx *= y
        dx *= dy
        return dx


class Tanh(Activation):
    """Hyperbolic tangent. Input and output ``(N, *shape)``; caches the output."""

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = np.tanh(as_float(x))
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        y = self._cache
        return dy * (1 - y * y)


class ReLU(Activation):
    """Rectified linear unit ``y = max(x, 0)``. Input and output ``(N, *shape)``; caches the mask
    ``x > 0``."""

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        self._cache = x > 0
        return np.maximum(x, 0)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        return dy * self._cache


class LeakyReLU(Activation):
    """Leaky rectifier: ``y = x`` for ``x > 0``, ``alpha * x`` otherwise.

    ``alpha``: slope for negative inputs, at least 0. Input and output ``(N, *shape)``; caches
    the mask ``x > 0``.
    """

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        if not alpha >= 0:
            raise ValueError(f"alpha must be at least 0, got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        positive = x > 0
        self._cache = positive
        return np.where(positive, x, self.alpha * x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        return np.where(self._cache, dy, self.alpha * dy)

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha})"


class Softmax(Activation):
    """Softmax over the last axis, per sample: ``y = exp(x - max x) / sum(exp(x - max x))``.

    Input and output ``(N, ..., C)``; caches the output. As the model's output head it is fused
    with a cost whose ``fused_activation`` is ``"softmax"`` (cross-entropy), which then works on the
    logits directly; ``backward`` is the full Jacobian-vector product
    ``dx = y * (dy - sum(dy * y, axis=-1))``.
    """

    fusable_as = "softmax"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        y = x - np.max(x, axis=-1, keepdims=True)
        with np.errstate(under="ignore"):
            np.exp(y, out=y)
        y /= np.sum(y, axis=-1, keepdims=True)
        self._cache = y
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        y = self._cache
        dx = dy - np.sum(dy * y, axis=-1, keepdims=True)
        dx *= y
        return dx


class GELU(Activation):
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016) in its **tanh form** (PyTorch's
    ``GELU(approximate="tanh")``, BERT's and GPT-2's):
    ``y = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``.

    It differs from the exact form ``x * Phi(x)`` (erf) by less than 5e-4 everywhere, and NumPy has
    no vectorized ``erf``. Input and output ``(N, *shape)``; caches the input and the ``tanh``.
    """

    _C = math.sqrt(2.0 / math.pi)
    _K = 0.044715

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        c, k = x.dtype.type(self._C), x.dtype.type(self._K)
        t = x * x
        t *= k
        t += 1
        t *= x
        t *= c
        np.tanh(t, out=t)
        self._cache = (x, t)
        y = t + 1
        y *= x
        y *= x.dtype.type(0.5)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        x, t = self._cache
        c, k = x.dtype.type(self._C), x.dtype.type(self._K)
        # dy/dx = 0.5 * (1 + t) + 0.5 * x * (1 - t^2) * c * (1 + 3 k x^2)
        inner = x * x
        inner *= 3 * k
        inner += 1
        inner *= c
        inner *= x
        inner *= 1 - t * t
        inner += t
        inner += 1
        inner *= x.dtype.type(0.5)
        inner *= dy
        return inner


class Scale(Activation):
    """Multiply by a constant: ``y = factor * x``. Input and output ``(N, *shape)``.

    Placed before the softmax head it scales the logits (airbench's ``scaling_factor = 1/9``), which
    softens the predicted distribution the cost sees without changing the argmax; a standalone
    layer rather than a cost option, so that ``predict`` and the loss see the same logits.
    ``factor``: any finite number other than 0.
    """

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__()
        if not (math.isfinite(factor) and factor != 0):
            raise ValueError(f"factor must be a finite number other than 0, got {factor}")
        self.factor = float(factor)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        self._cache = True
        return x * x.dtype.type(self.factor)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        require_forward(self._cache, self)
        return dy * dy.dtype.type(self.factor)

    def __repr__(self) -> str:
        return f"Scale(factor={self.factor})"


#: registered name -> class
ACTIVATIONS: dict[str, type[Activation]] = {
    "identity": Identity,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softmax": Softmax,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "gelu": GELU,
}
