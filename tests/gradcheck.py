"""Numerical gradient checks for layers (central differences in float64)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d array by central differences, perturbing ``array`` in place (restored after)."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat = array.reshape(-1)  # a view: the array must be contiguous
    assert np.shares_memory(flat, array)
    out = grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = f()
        flat[i] = original - eps
        minus = f()
        flat[i] = original
        out[i] = (plus - minus) / (2 * eps)
    return grad


def to_float64(layer: Any) -> None:
    """Rebind the layer's parameters and gradients as float64 copies (for precise checks)."""
    for key in list(layer.params):
        layer.params[key] = np.ascontiguousarray(layer.params[key], dtype=np.float64)
    for key in list(layer.grads):
        layer.grads[key] = np.ascontiguousarray(layer.grads[key], dtype=np.float64)


def check_layer_gradients(
    layer: Any,
    input_shape: tuple[int, ...],
    batch: int = 3,
    seed: int = 0,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    x: np.ndarray | None = None,
    training: bool = True,
    build: bool = True,
) -> dict[str, np.ndarray]:
    """Check ``layer.backward`` against central differences of ``loss = sum(forward(x) * R)``.

    Builds the layer (unless ``build`` is false), converts its parameters to float64, draws
    ``x`` (unless given) and a random ``R`` shaped like the output, and compares the returned
    ``dx`` and every ``grads[name]`` with the numerical gradients. Returns the analytic
    gradients (``"x"`` and the parameter names) for further assertions.
    """
    rng = np.random.default_rng(seed)
    if build:
        layer.build(tuple(input_shape), rng)
    to_float64(layer)
    if x is None:
        x = rng.standard_normal((batch, *input_shape))
    x = np.array(x, dtype=np.float64)

    out = layer.forward(x, training)
    assert out.dtype == np.float64, f"forward turned float64 input into {out.dtype}"
    weights = rng.standard_normal(out.shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x, training) * weights))

    analytic = {"x": np.array(layer.backward(weights.copy()), dtype=np.float64)}
    assert analytic["x"].shape == x.shape, f"dx has shape {analytic['x'].shape}, x has {x.shape}"
    assert set(layer.grads) == set(layer.params)
    for key, grad in layer.grads.items():
        assert grad.shape == layer.params[key].shape, f"grads[{key!r}] shape {grad.shape}"
        analytic[key] = np.array(grad, dtype=np.float64)

    numeric_x = numerical_gradient(loss, x)
    np.testing.assert_allclose(analytic["x"], numeric_x, atol=atol, rtol=rtol, err_msg="dx")
    for key, param in layer.params.items():
        numeric = numerical_gradient(loss, param)
        np.testing.assert_allclose(analytic[key], numeric, atol=atol, rtol=rtol, err_msg=f"grads[{key!r}]")
    return analytic


def check_function_gradient(
    f: Callable[[np.ndarray], float],
    grad: np.ndarray,
    at: np.ndarray,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Compare ``grad`` with the central-difference gradient of scalar ``f`` at ``at`` (float64)."""
    point = np.array(at, dtype=np.float64)
    numeric = numerical_gradient(lambda: f(point), point)
    np.testing.assert_allclose(np.asarray(grad, dtype=np.float64), numeric, atol=atol, rtol=rtol)
