"""The plugin author's test kit: contract checks, gradient checks and a tiny end-to-end run.

Shipped with numpyml and registered as a pytest plugin (entry point ``pytest11``), so in any
environment where numpyml is installed its fixtures are available without a ``conftest.py``:

* ``numpyml_rng``: a :class:`numpy.random.Generator` seeded with 0;
* ``numpyml_manager``: a fresh :class:`~numpyml_core.PluginManager` with every installed plugin loaded,
  made the process-wide one for the test (and reset afterwards);
* ``numpyml_tiny_experiment``: :func:`run_tiny_experiment` with its run folder in ``tmp_path``;
* ``numpyml_plugin``: :func:`plugin_components` ("my plugin loads and registers these components"),
  skipping the test when a distribution it names is not installed.

The checks are plain functions usable from any test (and by ``numpyml check``). Each takes
``make``, a callable returning a *fresh* component (a class with usable defaults,
``functools.partial(Dense, units=3)``, or a ``lambda``), because several checks need more than
one instance (determinism, exact resume). Every check raises :class:`ContractError` (an
``AssertionError``) with a message saying what is wrong, and returns a dict of what it measured.

* :func:`check_layer` (also for activations): build/forward/backward, shapes, dtypes
  (float32 in -> float32 out), ``params``/``grads`` consistency, no rebinding of parameters,
  evaluation mode is per-sample, determinism under a seed, and :func:`check_layer_gradients`.
* :func:`check_layer_gradients`: ``dx`` and every ``grads[name]`` against float64 central
  differences of ``sum(forward(x) * R)``.
* :func:`check_cost`, :func:`check_optimizer`, :func:`check_initializer`, :func:`check_dataset`,
  :func:`check_transform`, :func:`check_schedule`, :func:`check_callback`, :func:`check_strategy`.
* :func:`run_tiny_experiment`: trains a small network that uses the component on a synthetic data
  set through the real trainer, in well under a second.
* :func:`check_component`: the check for a kind, with probe parameters (what ``numpyml check``
  runs for each installed component).
* :func:`plugin_components`: the components a plugin registers, loaded the way numpyml loads plugins.

Components may help the checks with two optional class attributes: ``example_params`` (a dict of
constructor arguments used when the signature has required parameters) and, for layers,
``example_input_shape`` (a per-sample shape the layer accepts, e.g. ``(6, 6, 2)``).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import sys
import tempfile
import types
import typing
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from numpyml_core import hookimpl
from numpyml_core.plugin_api import hookspecs

__all__ = [
    "ContractError",
    "NeedsParameters",
    "numerical_gradient",
    "to_float64",
    "check_layer_gradients",
    "check_function_gradient",
    "check_layer",
    "check_cost",
    "check_optimizer",
    "check_initializer",
    "check_dataset",
    "check_transform",
    "check_schedule",
    "check_callback",
    "check_strategy",
    "check_staleness",
    "check_component",
    "probe_params",
    "run_tiny_experiment",
    "plugin_components",
    "NotInstalled",
    "TinyBlobs",
    "CHECKS",
]


class ContractError(AssertionError):
    """A component does not fulfil its protocol; the message says how."""


class NeedsParameters(Exception):
    """A component cannot be built without parameters the checks cannot guess."""


class NotInstalled(ContractError):
    """:func:`plugin_components` was given a distribution that is not installed in this environment."""


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise ContractError(message)


# --------------------------------------------------------------------------------------------
# numerical gradients
# --------------------------------------------------------------------------------------------
def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d array by central differences, perturbing ``array`` in place (restored after).

    ``array`` must be a contiguous float64 array that ``f`` reads (an input or a parameter).
    """
    grad = np.zeros_like(array, dtype=np.float64)
    flat = array.reshape(-1)  # a view: the array must be contiguous
    _require(np.shares_memory(flat, array), "numerical_gradient needs a contiguous array")
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
    """Rebind the layer's parameters and gradients as float64 copies (for precise checks only)."""
    for key in list(layer.params):
        layer.params[key] = np.ascontiguousarray(layer.params[key], dtype=np.float64)
    for key in list(layer.grads):
        layer.grads[key] = np.ascontiguousarray(layer.grads[key], dtype=np.float64)


def _assert_close(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float, what: str) -> None:
    try:
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)
    except AssertionError as exc:
        worst = float(np.max(np.abs(np.asarray(actual) - np.asarray(expected)))) if np.size(actual) else 0.0
        detail = str(exc).strip().splitlines()
        raise ContractError(
            f"{what}: the analytic gradient differs from float64 central differences "
            f"(largest difference {worst:.3g}). " + " ".join(line.strip() for line in detail[1:4])
        ) from None


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
    """Check ``layer.backward`` against float64 central differences of ``loss = sum(forward(x) * R)``.

    Builds the layer (unless ``build`` is false) with ``default_rng(seed)``, converts its
    parameters to float64, draws ``x`` (unless given) and a random ``R`` shaped like the output,
    and compares the returned ``dx`` and every ``grads[name]`` with the numerical gradients. The
    layer must compute in float64 when given float64 (keep the input's float dtype). Returns the
    analytic gradients (``"x"`` and the parameter names) for further assertions.
    """
    rng = np.random.default_rng(seed)
    if build:
        layer.build(tuple(input_shape), rng)
    to_float64(layer)
    if x is None:
        x = rng.standard_normal((batch, *input_shape))
    x = np.array(x, dtype=np.float64)

    out = layer.forward(x, training)
    _require(isinstance(out, np.ndarray), f"forward returned {type(out).__name__}, not a NumPy array")
    _require(out.dtype == np.float64, f"forward turned float64 input into {out.dtype} (keep the input's float "
                                      "dtype: the gradient check runs in float64)")
    weights = rng.standard_normal(out.shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x, training) * weights))

    dx = layer.backward(weights.copy())
    _require(dx is not None, "backward returned None (only allowed when input_gradient is False)")
    analytic = {"x": np.array(dx, dtype=np.float64)}
    _require(analytic["x"].shape == x.shape, f"backward returned dx of shape {analytic['x'].shape}, "
                                             f"but x has shape {x.shape}")
    _require(set(layer.grads) == set(layer.params),
             f"grads has keys {sorted(layer.grads)} but params has {sorted(layer.params)}")
    for key, grad in layer.grads.items():
        _require(np.shape(grad) == layer.params[key].shape,
                 f"grads[{key!r}] has shape {np.shape(grad)}, params[{key!r}] {layer.params[key].shape}")
        analytic[key] = np.array(grad, dtype=np.float64)

    _assert_close(analytic["x"], numerical_gradient(loss, x), atol, rtol, "dx (gradient with respect to the input)")
    for key, param in layer.params.items():
        _assert_close(analytic[key], numerical_gradient(loss, param), atol, rtol, f"grads[{key!r}]")
    return analytic


def check_function_gradient(
    f: Callable[[np.ndarray], float],
    grad: np.ndarray,
    at: np.ndarray,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    what: str = "gradient",
) -> None:
    """Compare ``grad`` with the central-difference gradient of scalar ``f`` at ``at`` (float64)."""
    point = np.array(at, dtype=np.float64)
    numeric = numerical_gradient(lambda: f(point), point)
    _assert_close(np.asarray(grad, dtype=np.float64), numeric, atol, rtol, what)


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------
#: per-sample shapes tried, in order, for a layer that does not say which input it takes
PROBE_INPUT_SHAPES: tuple[tuple[int, ...], ...] = ((4,), (5, 5, 2), (3, 4))


def away_from_zero(shape: tuple[int, ...], seed: int = 1, dtype: Any = np.float64) -> np.ndarray:
    """Standard normal values at least 0.1 away from 0 (the kink of relu-like functions), so
    central differences with a small step never straddle it."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x) * 0.1 + x, x).astype(dtype)


def _build_probe(make: Callable[[], Any], input_shape: tuple[int, ...] | None) -> tuple[tuple[int, ...], Any]:
    """The input shape to test with: the given one, ``example_input_shape``, or the first probe
    shape that ``build`` accepts."""
    if input_shape is not None:
        return tuple(input_shape), None
    layer = make()
    declared = getattr(layer, "example_input_shape", None)
    if declared is not None:
        return tuple(declared), None
    errors = []
    for shape in PROBE_INPUT_SHAPES:
        try:
            make().build(shape, np.random.default_rng(0))
        except (ValueError, TypeError) as exc:
            errors.append(f"{shape}: {exc}")
            continue
        return shape, None
    raise NeedsParameters("no probe input shape fits (set example_input_shape): " + "; ".join(errors))


def _is_float_array(value: Any, dtype: Any = np.float32) -> bool:
    return isinstance(value, np.ndarray) and value.dtype == dtype


def check_layer(
    make: Callable[[], Any],
    input_shape: tuple[int, ...] | None = None,
    batch: int = 3,
    seed: int = 0,
    gradients: bool = True,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Layer` contract (activations included).

    ``make()`` returns a fresh unbuilt layer; ``input_shape`` is per sample (default: the layer's
    ``example_input_shape`` or the first of :data:`PROBE_INPUT_SHAPES` it builds with). Checks:

    * ``params``/``grads`` are dicts; ``build`` returns a shape of positive ints; parameters are
      float32 arrays and ``grads`` has exactly their keys and shapes;
    * ``forward`` of a float32 batch ``(N, *input_shape)`` returns float32 ``(N, *output_shape)``
      in training and evaluation mode, finite; ``backward`` returns float32 ``dx`` shaped like
      the input and fills ``grads`` (float32, finite) without rebinding ``params``' arrays;
    * evaluation mode is per sample: ``forward(x[:1])`` equals ``forward(x)[:1]``;
    * determinism: two layers built with the same seed have bitwise equal parameters and outputs;
    * recycled outputs (a layer with ``recycle_outputs``, not random in training): with it ``True``, two
      training steps give bitwise the outputs, input gradients and ``grads`` of a twin without it, and
      evaluation returns a new array;
    * gradients (when ``gradients``): :func:`check_layer_gradients` in float64, in training mode
      unless training-mode forward is random (dropout), then in evaluation mode.
    """
    input_shape, _ = _build_probe(make, input_shape)
    layer = make()
    for attribute in ("build", "forward", "backward"):
        _require(callable(getattr(layer, attribute, None)), f"a layer needs a method {attribute}()")
    output_shape = layer.build(input_shape, np.random.default_rng(seed))
    _require(isinstance(output_shape, (tuple, list)) and all(isinstance(d, (int, np.integer)) and d > 0
                                                             for d in output_shape),
             f"build({input_shape}) must return the per-sample output shape (a tuple of positive ints), "
             f"got {output_shape!r}")
    output_shape = tuple(int(d) for d in output_shape)
    _require(isinstance(layer.params, dict) and isinstance(layer.grads, dict),
             "params and grads must be dicts (empty when the layer has no parameters)")
    for key, value in layer.params.items():
        _require(_is_float_array(value), f"params[{key!r}] must be a float32 NumPy array, got "
                                         f"{getattr(value, 'dtype', type(value).__name__)}")
    _require(set(layer.grads) == set(layer.params),
             f"after build, grads has keys {sorted(layer.grads)} but params has {sorted(layer.params)}")
    for key, value in layer.grads.items():
        _require(np.shape(value) == layer.params[key].shape,
                 f"grads[{key!r}] has shape {np.shape(value)}, params[{key!r}] {layer.params[key].shape}")
    state = getattr(layer, "state", None)
    if state is not None:
        _require(isinstance(state, dict) and all(isinstance(v, np.ndarray) for v in state.values()),
                 "state (optional) must be a dict of NumPy arrays")
    originals = dict(layer.params)  # references, not ids: a freed array's id can be reused
    built = {key: value.copy() for key, value in layer.params.items()}

    x = away_from_zero((batch, *input_shape), seed=seed + 1, dtype=np.float32)
    y = layer.forward(x.copy(), True)
    expected = (batch, *output_shape)
    _require(isinstance(y, np.ndarray), f"forward returned {type(y).__name__}, not a NumPy array")
    _require(y.shape == expected, f"forward(x of shape {x.shape}) returned shape {y.shape}; build said the "
                                  f"output is {output_shape} per sample, so {expected} was expected")
    _require(y.dtype == np.float32, f"forward turned float32 input into {y.dtype} (float32 in -> float32 out)")
    _require(np.all(np.isfinite(y)), "forward returned non-finite values for standard normal input")
    dy = np.random.default_rng(seed + 2).standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    if getattr(layer, "input_gradient", True) is not False:
        _require(isinstance(dx, np.ndarray), f"backward returned {type(dx).__name__}, not a NumPy array")
        _require(dx.shape == x.shape, f"backward returned dx of shape {dx.shape}, but x has shape {x.shape}")
        _require(dx.dtype == np.float32, f"backward turned float32 dy into {dx.dtype} dx")
        _require(np.all(np.isfinite(dx)), "backward returned non-finite values")
    _require(set(layer.grads) == set(layer.params),
             f"after backward, grads has keys {sorted(layer.grads)} but params has {sorted(layer.params)}")
    for key, value in layer.grads.items():
        _require(isinstance(value, np.ndarray) and value.shape == layer.params[key].shape,
                 f"after backward, grads[{key!r}] has shape {np.shape(value)}, expected {layer.params[key].shape}")
        _require(value.dtype == np.float32, f"after backward, grads[{key!r}] is {value.dtype}, expected float32")
        _require(np.all(np.isfinite(value)), f"after backward, grads[{key!r}] is not finite")
    for key, value in layer.params.items():
        _require(value is originals.get(key),
                 f"params[{key!r}] was rebound after build; the optimizer updates the arrays in place, so a "
                 "layer must keep them (write into them instead)")

    y_eval = layer.forward(x.copy(), False)
    _require(isinstance(y_eval, np.ndarray) and y_eval.shape == expected and y_eval.dtype == np.float32,
             f"forward(x, training=False) must return float32 {expected}, got "
             f"{getattr(y_eval, 'dtype', type(y_eval).__name__)} {getattr(y_eval, 'shape', '')}")
    one = layer.forward(x[:1].copy(), False)
    try:
        np.testing.assert_allclose(one, y_eval[:1], rtol=1e-4, atol=1e-5)
    except AssertionError:
        raise ContractError("in evaluation mode the output for a sample depends on the rest of the batch "
                            "(forward(x[:1]) != forward(x)[:1])") from None

    twin = make()
    twin.build(input_shape, np.random.default_rng(seed))
    for key, value in built.items():
        _require(key in twin.params and np.array_equal(twin.params[key], value),
                 f"params[{key!r}] differ between two layers built with the same seed (draw randomness only "
                 "from the rng given to build)")
    first = twin.forward(x.copy(), True)
    again = make()
    again.build(input_shape, np.random.default_rng(seed))
    _require(np.array_equal(first, again.forward(x.copy(), True)),
             "two layers built with the same seed give different training-mode outputs for the same input "
             "(draw randomness only from the rng given to build)")
    stochastic = not np.array_equal(twin.forward(x.copy(), True), twin.forward(x.copy(), True))

    if hasattr(twin, "recycle_outputs") and not stochastic:
        _check_recycled_outputs(make, input_shape, seed, x, dy)

    result: dict[str, Any] = {"input_shape": input_shape, "output_shape": output_shape,
                              "parameters": int(sum(v.size for v in layer.params.values())),
                              "stochastic_in_training": stochastic}
    if gradients:
        check_layer_gradients(make(), input_shape, batch=batch, seed=seed, atol=atol, rtol=rtol,
                              x=away_from_zero((batch, *input_shape), seed=seed + 1), training=not stochastic)
        result["gradient_mode"] = "evaluation" if stochastic else "training"
    return result


def _check_recycled_outputs(make: Callable[[], Any], input_shape: tuple[int, ...], seed: int, x: np.ndarray,
                            dy: np.ndarray) -> None:
    """Two training steps with ``recycle_outputs`` on equal (bitwise) two with it off; evaluation is new."""
    layers = [make(), make()]
    for layer, recycle in zip(layers, (True, False)):
        layer.build(input_shape, np.random.default_rng(seed))
        layer.recycle_outputs = recycle
    kept = None
    for step, scale in enumerate((1.0, -0.5)):  # other values in the second step: a stale buffer shows
        results = []
        for layer in layers:
            y = layer.forward(x * np.float32(scale), True)
            y_copy = y.copy()
            dx = layer.backward(dy * np.float32(scale))
            results.append((y_copy, None if dx is None else dx.copy(),
                            {k: v.copy() for k, v in layer.grads.items()}, y))
        (y_r, dx_r, g_r, kept), (y_f, dx_f, g_f, _) = results
        same = (np.array_equal(y_r, y_f) and (dx_r is None) == (dx_f is None)
                and (dx_r is None or np.array_equal(dx_r, dx_f)) and all(np.array_equal(g_r[k], g_f[k]) for k in g_f))
        _require(same, f"with recycle_outputs = True, training step {step + 1} gives other outputs, input gradients "
                       "or grads than without it (a reused buffer overwritten too early?)")
    evaluated = layers[0].forward(x.copy(), False)
    _require(not np.shares_memory(evaluated, kept), "with recycle_outputs = True, forward(x, training=False) "
             "returned the training step's buffer; evaluation outputs must be new arrays")


# --------------------------------------------------------------------------------------------
# costs, optimizers, initializers
# --------------------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_cost(make: Callable[[], Any], num_classes: int = 4, batch: int = 5, seed: int = 0,
               atol: float = 1e-6, rtol: float = 1e-5) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Cost` contract on softmax outputs and integer labels.

    ``loss`` is a finite scalar; ``gradient`` has the outputs' shape and dtype (float32 stays
    float32) and matches float64 central differences of ``loss``; a cost with
    ``fused_activation = "softmax"`` also has ``loss_from_logits``/``gradient_from_logits`` that
    agree with ``loss(softmax(z))`` and with central differences (and
    ``loss_and_gradient_from_logits``, when present, with both).
    """
    cost = make()
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((batch, num_classes))
    outputs = _softmax(logits)
    labels = rng.integers(0, num_classes, size=batch).astype(np.int64)
    loss = cost.loss(outputs, labels)
    _require(np.ndim(loss) == 0 and math.isfinite(float(loss)), f"loss must be a finite scalar, got {loss!r}")
    grad = cost.gradient(outputs.copy(), labels)
    _require(isinstance(grad, np.ndarray) and grad.shape == outputs.shape,
             f"gradient must have the outputs' shape {outputs.shape}, got {getattr(grad, 'shape', type(grad).__name__)}")
    check_function_gradient(lambda o: float(cost.loss(o, labels)), grad, outputs, atol, rtol,
                            "gradient(outputs, labels)")
    grad32 = cost.gradient(outputs.astype(np.float32), labels)
    _require(grad32.dtype == np.float32, f"gradient of float32 outputs is {grad32.dtype}, expected float32")
    result: dict[str, Any] = {"loss": float(loss), "fused": None}
    fused = getattr(cost, "fused_activation", None)
    if fused is not None:
        _require(fused == "softmax", f"fused_activation {fused!r}: the checks know only 'softmax'")
        for method in ("loss_from_logits", "gradient_from_logits"):
            _require(callable(getattr(cost, method, None)), f"fused_activation is set, so {method}() is required")
        from_logits = float(cost.loss_from_logits(logits, labels))
        _require(abs(from_logits - float(loss)) <= 1e-6 * max(1.0, abs(float(loss))),
                 f"loss_from_logits(z) = {from_logits} but loss(softmax(z)) = {float(loss)}")
        glogits = cost.gradient_from_logits(logits.copy(), labels)
        check_function_gradient(lambda z: float(cost.loss_from_logits(z, labels)), glogits, logits, atol, rtol,
                                "gradient_from_logits(logits, labels)")
        both = getattr(cost, "loss_and_gradient_from_logits", None)
        if both is not None:
            l2, g2 = both(logits.copy(), labels)
            _require(abs(float(l2) - from_logits) <= 1e-9 * max(1.0, abs(from_logits)) and np.allclose(g2, glogits),
                     "loss_and_gradient_from_logits disagrees with loss_from_logits/gradient_from_logits")
        result["fused"] = fused
    return result


def check_optimizer(make: Callable[[], Any], steps: int = 20, seed: int = 0) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Optimizer` contract.

    ``learning_rate`` is a settable float; ``step`` updates the given float32 arrays in place
    (same objects, same dtype) and, on ``f(p) = |p|^2 / 2`` (gradient ``p``), makes progress;
    ``state_dict`` is a dict of NumPy arrays, and a fresh optimizer given it continues bitwise
    like the original (exact resume).
    """
    optimizer = make()
    rate = getattr(optimizer, "learning_rate", None)
    _require(isinstance(rate, (int, float)) and not isinstance(rate, bool),
             f"learning_rate must be a number attribute, got {rate!r}")
    rng = np.random.default_rng(seed)
    params = {"0.weight": rng.standard_normal((3, 4)).astype(np.float32),
              "0.bias": rng.standard_normal(4).astype(np.float32)}
    originals = dict(params)
    start = math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in params.values()))
    for _ in range(steps):
        optimizer.step(params, {k: v.copy() for k, v in params.items()})
    for key, value in params.items():
        _require(value is originals[key], f"step rebound params[{key!r}]; it must update the arrays in place")
        _require(value.dtype == np.float32, f"step changed params[{key!r}] to {value.dtype}")
        _require(np.all(np.isfinite(value)), f"params[{key!r}] became non-finite")
    end = math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in params.values()))
    _require(end < start, f"{steps} steps on |p|^2/2 did not reduce |p| ({start:.4g} -> {end:.4g})")

    optimizer.learning_rate = 0.5 * float(rate)
    _require(abs(float(optimizer.learning_rate) - 0.5 * float(rate)) < 1e-12, "learning_rate is not settable")
    optimizer.learning_rate = rate
    state = optimizer.state_dict()
    _require(isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, np.ndarray)
                                             for k, v in state.items()),
             "state_dict() must return a dict of str -> NumPy array (saved without pickling)")
    twin = make()
    twin.load_state_dict({k: np.array(v, copy=True) for k, v in state.items()})
    mine = {k: v.copy() for k, v in params.items()}
    theirs = {k: v.copy() for k, v in params.items()}
    for _ in range(3):
        optimizer.step(mine, {k: v.copy() for k, v in mine.items()})
        twin.step(theirs, {k: v.copy() for k, v in theirs.items()})
    for key in mine:
        _require(np.array_equal(mine[key], theirs[key]),
                 f"after load_state_dict, a fresh optimizer does not continue exactly like the original "
                 f"(params[{key!r}] differ): state_dict misses some state")
    return {"reduced_norm": (start, end), "state_keys": sorted(state)}


def check_initializer(make: Callable[[], Any], seed: int = 0) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Initializer` contract: right shape and dtype, finite,
    same seed -> same values, for a dense weight, a convolution weight and a bias."""
    init = make()
    for shape in ((4, 3), (3, 3, 2, 4), (5,)):
        a = init(shape, np.random.default_rng(seed), np.float32)
        _require(isinstance(a, np.ndarray) and a.shape == shape and a.dtype == np.float32,
                 f"{shape} float32 requested, got {getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
        _require(np.all(np.isfinite(a)), f"{shape}: non-finite values")
        b = make()(shape, np.random.default_rng(seed), np.float32)
        _require(np.array_equal(a, b), f"{shape}: different values for the same seed")
    return {}


# --------------------------------------------------------------------------------------------
# datasets, transforms, schedules
# --------------------------------------------------------------------------------------------
def check_dataset(make: Callable[[], Any], data_dir: str | None = None, samples: int = 16) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Dataset` contract.

    ``input_shape`` (tuple of positive ints), ``num_classes`` and as many ``class_names``;
    ``load(data_dir)`` returns a dict with a ``"train"`` split; every split has a length and
    ``batch(indices)`` returns float32 ``(k, *input_shape)`` and int64 labels ``(k,)`` in
    ``[0, num_classes)``, the same for the same indices; ``subset`` (when present) keeps order.
    Only ``samples`` samples per split are converted. Missing data raises ``UserError`` from
    ``load`` (propagated, so callers can tell "no data" from "broken").
    """
    dataset = make()
    shape = getattr(dataset, "input_shape", None)
    _require(isinstance(shape, (tuple, list)) and shape and all(isinstance(d, (int, np.integer)) and d > 0
                                                                for d in shape),
             f"input_shape must be a tuple of positive ints, got {shape!r}")
    classes = getattr(dataset, "num_classes", None)
    _require(isinstance(classes, (int, np.integer)) and classes >= 1, f"num_classes must be a positive int, got {classes!r}")
    names = list(getattr(dataset, "class_names", None) or [])
    _require(len(names) == classes and all(isinstance(n, str) for n in names),
             f"class_names must be {classes} strings, got {names!r}")
    splits = dataset.load(data_dir)
    _require(isinstance(splits, dict) and "train" in splits, f"load() must return a dict with a 'train' split, "
                                                             f"got {type(splits).__name__} {sorted(splits) if isinstance(splits, dict) else ''}")
    sizes = {}
    for name, split in splits.items():
        n = len(split)
        _require(n >= 1, f"split {name!r} is empty")
        sizes[name] = n
        indices = np.unique(np.linspace(0, n - 1, num=min(samples, n)).astype(np.int64))
        x, y = split.batch(indices)
        k = len(indices)
        _require(isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (k, *tuple(shape)),
                 f"split {name!r}: batch() must return x float32 {(k, *tuple(shape))}, got "
                 f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        _require(np.all(np.isfinite(x)), f"split {name!r}: non-finite inputs")
        _require(isinstance(y, np.ndarray) and y.dtype == np.int64 and y.shape == (k,),
                 f"split {name!r}: batch() must return int64 labels {(k,)}, got "
                 f"{getattr(y, 'dtype', type(y).__name__)} {getattr(y, 'shape', '')}")
        _require(np.all((y >= 0) & (y < classes)), f"split {name!r}: labels outside [0, {classes})")
        x2, y2 = split.batch(indices)
        _require(np.array_equal(x, x2) and np.array_equal(y, y2), f"split {name!r}: batch() is not repeatable")
        subset = getattr(split, "subset", None)
        if subset is not None and n >= 2:
            part = subset(1, n)
            _require(len(part) == n - 1, f"split {name!r}: subset(1, {n}) has {len(part)} samples, expected {n - 1}")
            px, py = part.batch(np.array([0]))
            ox, oy = split.batch(np.array([1]))
            _require(np.array_equal(px, ox) and np.array_equal(py, oy), f"split {name!r}: subset(1, n)[0] is not sample 1")
    return {"splits": sizes}


def check_transform(make: Callable[[], Any], shape: tuple[int, ...] = (4, 6, 6, 1), seed: int = 0) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Transform` contract: float32 batch in, float32 batch
    of the same shape out, finite, and the same result for the same seed."""
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    out = make()(x.copy(), np.random.default_rng(seed))
    _require(isinstance(out, np.ndarray) and out.shape == x.shape and out.dtype == np.float32,
             f"transform must return float32 {x.shape}, got {getattr(out, 'dtype', type(out).__name__)} "
             f"{getattr(out, 'shape', '')}")
    _require(np.all(np.isfinite(out)), "transform returned non-finite values")
    again = make()(x.copy(), np.random.default_rng(seed))
    _require(np.array_equal(out, again), "transform gives different results for the same seed (use the rng argument)")
    return {}


def check_schedule(make: Callable[[], Any], total_steps: int = 100, steps_per_epoch: int = 10,
                   base_learning_rate: float = 0.1) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Schedule` contract: after ``bind`` (when present), a
    finite non-negative learning rate for every step, a pure function of its arguments."""
    schedule = make()
    bind = getattr(schedule, "bind", None)
    if bind is not None:
        bind(total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    rates = [schedule(step, step // steps_per_epoch, base_learning_rate) for step in range(total_steps)]
    for step, rate in enumerate(rates):
        _require(isinstance(rate, (int, float, np.floating)) and math.isfinite(float(rate)) and rate >= 0,
                 f"step {step}: learning rate {rate!r} is not a finite non-negative number")
    again = [schedule(step, step // steps_per_epoch, base_learning_rate) for step in reversed(range(total_steps))]
    _require(rates == list(reversed(again)), "the schedule is not a pure function of (step, epoch, base_learning_rate)")
    return {"first": float(rates[0]), "last": float(rates[-1])}


# --------------------------------------------------------------------------------------------
# callbacks and strategies
# --------------------------------------------------------------------------------------------
def check_callback(make: Callable[[], Any], run: bool = True) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Callback` contract: at least one ``@hookimpl`` method,
    each named after a hook of :mod:`numpyml_core.hookspecs` with a subset of its arguments;
    ``state_dict``/``load_state_dict`` round-trip when present; and (when ``run``) a tiny
    experiment with the callback trains to the end."""
    import pluggy

    callback = make()
    pm = pluggy.PluginManager("numpyml")
    pm.add_hookspecs(hookspecs)
    try:
        pm.register(callback)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ContractError(f"hook implementation does not match its specification: {exc}") from None
    hooks = sorted(caller.name for caller in (pm.get_hookcallers(callback) or []))
    _require(hooks, "a callback needs at least one @hookimpl method named after a hook in numpyml_core.hookspecs")
    if callable(getattr(callback, "state_dict", None)):
        _require(callable(getattr(callback, "load_state_dict", None)), "state_dict() without load_state_dict()")
        make().load_state_dict(callback.state_dict())
    result: dict[str, Any] = {"hooks": hooks}
    if run:
        summary, _ = run_tiny_experiment("callback", make)
        result["summary"] = summary
    return result


def check_strategy(make: Callable[[], Any]) -> dict[str, Any]:
    """The :class:`~numpyml_core.protocols.Strategy` contract: ``setup``/``train_batch``/``teardown``
    exist and a tiny experiment trained with the strategy finishes with a finite, lower loss."""
    strategy = make()
    for method in ("setup", "train_batch", "teardown"):
        _require(callable(getattr(strategy, method, None)), f"a strategy needs a method {method}()")
    summary, run = run_tiny_experiment("strategy", make, epochs=3)
    losses = [row["train_loss"] for row in run.history]
    _require(all(math.isfinite(v) for v in losses), f"training losses are not finite: {losses}")
    _require(losses[-1] < losses[0], f"the training loss did not fall over 3 epochs: {losses}")
    return {"summary": summary}


def check_staleness(make: Callable[[], Any]) -> dict[str, Any]:
    """The staleness-compensation contract of ``run.apply_update(update, compensation)``:
    ``learning_rate_factor(tau)`` is a positive number (1 for a fresh gradient, ``tau == 1``), and
    ``compensate(grads, params_now, params_stale, tau)`` leaves grads of the same shape and dtype, finite,
    and unchanged when fresh."""
    rule = make()
    factors = {tau: rule.learning_rate_factor(tau) for tau in (1, 2, 5)}
    for tau, factor in factors.items():
        _require(isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0,
                 f"learning_rate_factor({tau}) must be a positive number, got {factor!r}")
    _require(factors[1] == 1.0, f"learning_rate_factor(1) (a fresh gradient) must be 1, got {factors[1]!r}")
    rng = np.random.default_rng(0)
    now, stale = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2))
    for tau, read in ((1, now), (3, stale)):
        grads = {"0.weight": rng.standard_normal((3, 4)).astype(np.float32)}
        before = grads["0.weight"].copy()
        rule.compensate(grads, {"0.weight": now}, {"0.weight": read}, tau)
        out = grads["0.weight"]
        _require(isinstance(out, np.ndarray) and out.shape == (3, 4) and out.dtype == np.float32
                 and np.all(np.isfinite(out)), f"compensate (tau {tau}) must leave finite float32 (3, 4) grads")
        _require(tau > 1 or np.array_equal(out, before), "compensate changed a fresh gradient (tau 1)")
    return {"learning_rate_factors": factors}


# --------------------------------------------------------------------------------------------
# a tiny experiment, end to end
# --------------------------------------------------------------------------------------------
class TinyBlobs:
    """Synthetic, separable data: ``classes`` Gaussian blobs drawn as 6x6 uint8 images.

    Registered as the dataset ``numpyml_testing_blobs`` in the plugin manager
    :func:`run_tiny_experiment` uses; handy in plugin tests because it needs no files.
    """

    input_shape = (6, 6, 1)

    def __init__(self, samples: int = 256, test_samples: int = 64, classes: int = 4, noise: float = 30.0,
                 seed: int = 1234):
        self.samples = samples
        self.test_samples = test_samples
        self.num_classes = classes
        self.class_names = [f"blob{i}" for i in range(classes)]
        self.noise = noise
        self.seed = seed

    def load(self, data_dir: str | None) -> dict[str, Any]:
        from numpyml_core.plugin_api import ArraySplit

        centres = np.random.default_rng(self.seed).uniform(40, 215, size=(self.num_classes, 36))

        def make(n: int, seed: int) -> ArraySplit:
            r = np.random.default_rng(seed)
            y = r.integers(0, self.num_classes, size=n)
            x = centres[y] + r.normal(0, self.noise, size=(n, 36))
            return ArraySplit(np.clip(x, 0, 255).astype(np.uint8).reshape(n, 6, 6, 1), y)

        return {"train": make(self.samples, self.seed + 1), "test": make(self.test_samples, self.seed + 2)}


TINY_DATASET = "numpyml_testing_blobs"
UNDER_TEST = "under_test"


class _KitPlugin:
    """Registers the kit's synthetic dataset (and, per call, the component under test)."""

    def __init__(self, extra: tuple[str, str, Callable[..., Any]] | None = None):
        self.extra = extra

    @hookimpl
    def numpyml_register_components(self, register: Callable[..., None]) -> None:
        register("dataset", TINY_DATASET, TinyBlobs)
        if self.extra is not None:
            register(*self.extra)


def _kit_manager(extra: tuple[str, str, Callable[..., Any]] | None = None) -> Any:
    from numpyml_core import __version__
    from numpyml_core import PluginManager

    plugin = _KitPlugin(extra)
    manager = PluginManager()
    manager.load_entry_points()
    manager.load_plugin(plugin, "numpyml-testing", "numpyml", __version__)
    return manager


@contextlib.contextmanager
def _as_process_manager(manager: Any) -> Iterator[None]:
    """Make ``manager`` the process-wide plugin manager (components such as ``dense`` build
    their activation through :func:`numpyml_core.create`), restoring the previous one after."""
    from numpyml_core.plugin_api import set_plugin_manager

    previous = set_plugin_manager(manager)
    try:
        yield
    finally:
        set_plugin_manager(previous)


def _layers_for(kind: str, name: str, params: dict[str, Any], classes: int) -> list[list[dict[str, Any]]]:
    """Candidate [[model.layers]] lists that use the component, tried in order."""
    head = {"type": "dense", "units": classes, "activation": "softmax"}
    hidden = {"type": "dense", "units": 16, "activation": "tanh"}
    me = {"type": name, **params}
    if kind == "layer":
        return [[me, {"type": "flatten"}, head], [{"type": "flatten"}, me, head], [{"type": "flatten"}, me, hidden, head]]
    if kind == "activation":
        return [[{"type": "flatten"}, {"type": "dense", "units": 16, "activation": me}, head]]
    if kind == "initializer":
        return [[{"type": "flatten"}, {**hidden, "weight_initializer": me}, head]]
    return [[{"type": "flatten"}, hidden, head]]


def run_tiny_experiment(
    kind: str,
    component: str | Callable[..., Any],
    params: dict[str, Any] | None = None,
    *,
    epochs: int = 2,
    seed: int = 0,
    output_dir: str | Path | None = None,
    data_dir: str | None = None,
    learning_rate: float = 0.1,
) -> tuple[dict[str, Any], Any]:
    """Train a small network that uses one component, through the real trainer; return
    ``(summary, run)`` (``run.history`` holds the per-epoch metrics).

    ``component`` is a registered name or a factory (registered for the run as ``under_test``,
    so the plugin need not be installed). Where it goes depends on ``kind``: a ``layer`` is tried
    first, after the flatten, then before the last dense layer; an ``activation`` becomes a hidden
    dense layer's activation; an ``initializer`` its weight initializer; a ``cost``,
    ``optimizer``, ``strategy``, ``schedule``, ``transform`` or ``callback`` takes its slot; a
    ``dataset`` replaces the synthetic :class:`TinyBlobs` data (``data_dir`` is passed to it).
    Everything else is built-in: dense layers, ``cross_entropy``, ``sgd``, ``serial``. Raises
    :class:`numpyml_core.ConfigError` when the component does not fit any candidate network, and
    whatever training raises.
    """
    import numpyml_core as nm
    from numpyml_core import ConfigError
    from numpyml_core.plugin_api import parse_experiment

    params = dict(params or {})
    if isinstance(component, str):
        name, manager = component, _kit_manager()
    else:
        name, manager = UNDER_TEST, _kit_manager((kind, UNDER_TEST, component))
    with _as_process_manager(manager), contextlib.ExitStack() as stack:
        if output_dir is None:
            output_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="numpyml-tiny-"))
        classes = 4
        dataset: dict[str, Any] = {"type": TINY_DATASET, "validation": 64}
        if kind == "dataset":
            dataset = {"type": name, **params}
            classes = int(manager.create("dataset", name, **dict(params)).num_classes)
        training: dict[str, Any] = {"epochs": epochs, "batch_size": 32}
        document: dict[str, Any] = {
            "name": f"tiny-{kind}", "seed": seed, "dataset": dataset,
            "cost": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "learning_rate": learning_rate},
            "training": training,
        }
        slot = {"cost": ("cost",), "optimizer": ("optimizer",), "strategy": ("training", "strategy"),
                "schedule": ("training", "schedule")}
        if kind in slot:
            *parents, last = slot[kind]
            node = document
            for key in parents:
                node = node[key]
            node[last] = {"type": name, **params}
        elif kind == "transform":
            training["transforms"] = [{"type": name, **params}]
        elif kind == "callback":
            document["callbacks"] = [{"type": name, **params}]
        errors = []
        spec = None
        for layers in _layers_for(kind, name, params, classes):
            document["model"] = {"layers": layers}
            try:
                spec = parse_experiment(_copy(document), f"<tiny {kind} experiment>", manager.registry)
                from numpyml_core.plugin_api import validate_experiment

                validate_experiment(spec, manager)
                break
            except ConfigError as exc:
                errors.append(str(exc))
                spec = None
        if spec is None:
            raise ConfigError(f"{kind} '{name}' does not fit a tiny network: " + " | ".join(errors))
        result = nm.run(nm.Experiment(spec, manager), output=output_dir, data_dir=data_dir, progress=False)
    return result.summary, result.run


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# probe parameters and one entry point per kind (numpyml check)
# --------------------------------------------------------------------------------------------
_SMALL_INTS = {"units": 3, "filters": 3, "features": 3, "channels": 3, "kernel_size": 3, "pool_size": 2,
               "size": 2, "num_classes": 3, "classes": 3, "samples": 64}


def probe_params(factory: Any, kind: str = "") -> dict[str, Any]:
    """Constructor arguments to build an example instance: the factory's ``example_params``
    plus small guesses for required ints, floats, bools and ``Literal`` choices; anything else
    required raises :class:`NeedsParameters` naming it. A dataset with a ``download`` parameter
    gets ``download=False`` (checks never download)."""
    from numpyml_core.plugin_api import signature_of

    params: dict[str, Any] = dict(getattr(factory, "example_params", None) or {})
    missing = []
    for p in signature_of(factory):
        if p.name in params:
            continue
        if kind == "dataset" and p.name == "download":
            params["download"] = False
            continue
        if p.default is not inspect.Parameter.empty:
            continue
        guess = _guess(p.name, p.annotation)
        if guess is _NO_GUESS:
            missing.append(p.name)
        else:
            params[p.name] = guess
    if missing:
        raise NeedsParameters(f"needs parameters: {', '.join(missing)} (set example_params on the factory)")
    return params


_NO_GUESS = object()


def _guess(name: str, annotation: Any) -> Any:
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, _union_type()) else (annotation,)
    for option in options:
        if typing.get_origin(option) is typing.Literal:
            return typing.get_args(option)[0]
    for option in options:
        if option is int:
            return _SMALL_INTS.get(name, 2)
    for option in options:
        if option is float:
            return 0.1
        if option is bool:
            return False
    return _NO_GUESS


def _union_type() -> Any:
    import types

    return types.UnionType


#: kind -> check function taking ``make`` (what :func:`check_component` dispatches to)
CHECKS: dict[str, Callable[..., dict[str, Any]]] = {
    "layer": check_layer,
    "activation": check_layer,
    "cost": check_cost,
    "optimizer": check_optimizer,
    "initializer": check_initializer,
    "dataset": check_dataset,
    "transform": check_transform,
    "schedule": check_schedule,
    "callback": check_callback,
    "strategy": check_strategy,
    "staleness": check_staleness,
}


# --------------------------------------------------------------------------------------------
# a plugin's registration, as numpyml loads it
# --------------------------------------------------------------------------------------------
def plugin_components(plugin: str | types.ModuleType) -> dict[tuple[str, str], Any]:
    """The components ``plugin`` registers, ``{(kind, name): numpyml_core.Component}`` (each with ``.factory``,
    ``.plugin``, ``.distribution``, ``.version``), loaded as numpyml loads plugins: after every installed one,
    so a (kind, name) another plugin already has fails here too.

    ``plugin`` is either an installed distribution's name (``"numpyml-swish"``: its ``numpyml`` entry points are
    loaded, as ``numpyml list`` would) or a plugin module (``import numpyml_swish``: its hook is called
    directly, installed or not). Raises :class:`ContractError` when the plugin fails to import or register,
    or a distribution has no ``numpyml`` entry point, and :class:`NotInstalled` (a ``ContractError``) when the
    distribution is not installed in this Python environment.
    """
    from numpyml_core import PluginError, PluginManager

    if isinstance(plugin, str):
        try:
            distribution = metadata.distribution(plugin)
        except metadata.PackageNotFoundError:
            raise NotInstalled(
                f"the distribution {plugin} is not installed in this Python environment ({sys.prefix}); install it "
                "into the environment numpyml is installed in (docs/plugins.md, \"Testing a plugin\")") from None
        name = distribution.metadata["Name"]
        if not [ep for ep in distribution.entry_points if ep.group == "numpyml"]:
            raise ContractError(f"{name} declares no entry point in the group 'numpyml': add "
                                "[project.entry-points.numpyml] to its pyproject.toml and reinstall it")
        manager = PluginManager(strict=False)
        manager.load_entry_points()
        failed = [f for f in manager.failed if f.distribution == name]
        mine = {key: c for key, c in manager.registry.components.items() if c.distribution == name}
    else:
        entry_points = [ep for ep in metadata.entry_points(group="numpyml") if ep.value == plugin.__name__]
        plugin_name = entry_points[0].name if entry_points else plugin.__name__
        distribution_name, version = "not installed", str(getattr(plugin, "__version__", ""))
        if entry_points and entry_points[0].dist is not None:
            distribution_name, version = entry_points[0].dist.metadata["Name"], entry_points[0].dist.version
        manager = PluginManager(disable=[ep.name for ep in entry_points], strict=False)  # loaded once, below
        manager.load_entry_points()
        manager.load_plugin(plugin, plugin_name, distribution_name, version)
        failed = [f for f in manager.failed if f.plugin == plugin_name]
        mine = {key: c for key, c in manager.registry.components.items() if c.plugin == plugin_name}
    if failed:
        raise ContractError("; ".join(f"plugin '{f.plugin}' ({f.distribution}) failed to load: {f.error}"
                                      for f in failed))
    for component in mine.values():  # a lazy reference is imported and checked now
        try:
            _ = component.factory
        except PluginError as exc:
            raise ContractError(str(exc)) from None
    return mine


#: how :func:`check_component` starts the detail of a component skipped for a missing optional extra
MISSING_EXTRA = "optional dependency not installed"


@dataclass
class CheckResult:
    """One component's outcome in :func:`check_component`: ``status`` is ``"pass"``, ``"fail"``
    or ``"skip"``; ``detail`` says why (or what was measured)."""

    kind: str
    name: str
    status: str
    detail: str = ""


def check_component(kind: str, name: str, factory: Any, data_dir: str | None = None) -> CheckResult:
    """Run the contract check for ``kind`` on ``factory`` built with :func:`probe_params`,
    turning every outcome into a :class:`CheckResult` (never raising for the component's faults).

    A component whose optional dependency is missing (it raises
    :class:`~numpyml_core.errors.MissingExtra`) is skipped, the detail starting with
    :data:`MISSING_EXTRA` and saying what to install. Output the component prints (progress
    displays) is swallowed."""
    from numpyml_core import MissingExtra, UserError

    check = CHECKS.get(kind)
    if check is None:
        return CheckResult(kind, name, "skip", f"no contract check for kind '{kind}'")
    try:
        params = probe_params(factory, kind)
    except NeedsParameters as exc:
        return CheckResult(kind, name, "skip", str(exc))

    def make() -> Any:
        return factory(**params)

    sink = io.StringIO()
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            make()  # constructor errors are the component's (or the probe's) problem
    except MissingExtra as exc:
        return CheckResult(kind, name, "skip", f"{MISSING_EXTRA}: {exc}")
    except (TypeError, ValueError) as exc:
        return CheckResult(kind, name, "skip", f"cannot build with probe parameters ({shown}): {exc}")
    except Exception as exc:  # noqa: BLE001 - a constructor that crashes is a failed check, not a crash of ours
        return CheckResult(kind, name, "fail", f"cannot build with probe parameters ({shown}): constructor raised "
                                               f"{type(exc).__name__}: {exc}")
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            if kind == "dataset":
                result = check(make, data_dir=data_dir)
            else:
                result = check(make)
    except NeedsParameters as exc:
        return CheckResult(kind, name, "skip", str(exc))
    except MissingExtra as exc:
        return CheckResult(kind, name, "skip", f"{MISSING_EXTRA}: {exc}")
    except UserError as exc:
        if kind == "dataset":
            first = str(exc).strip().split(". ")[0]
            return CheckResult(kind, name, "skip", f"data not available: {first}")
        return CheckResult(kind, name, "fail", f"{type(exc).__name__}: {exc}")
    except AssertionError as exc:
        return CheckResult(kind, name, "fail", str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - a component's crash is a failed check, not ours
        if kind == "strategy" and TINY_DATASET in str(exc):
            return CheckResult(kind, name, "skip", "its workers run in other processes, which cannot see the check's "
                                                   "in-process synthetic dataset; test it with an installed dataset")
        return CheckResult(kind, name, "fail", f"raised {type(exc).__name__}: {exc}")
    note = ", ".join(f"{k}={v!r}" for k, v in params.items())
    detail = _describe(kind, result)
    if note:
        detail = f"{detail} (probe: {note})" if detail else f"probe: {note}"
    return CheckResult(kind, name, "pass", detail)


def _describe(kind: str, result: dict[str, Any]) -> str:
    if kind in ("layer", "activation"):
        text = f"{result['input_shape']} -> {result['output_shape']}, {result['parameters']} params"
        if "gradient_mode" in result:
            text += f", gradients ok ({result['gradient_mode']} mode)"
        return text
    if kind == "dataset":
        return ", ".join(f"{k} {v:,}" for k, v in result["splits"].items())
    if kind == "callback":
        return "hooks: " + ", ".join(h.removeprefix("numpyml_") for h in result["hooks"])
    if kind == "cost":
        return "gradients ok" + (f", fused with {result['fused']}" if result.get("fused") else "")
    if kind == "optimizer":
        return "descends, exact resume"
    if kind == "strategy":
        return f"trained: train_loss {result['summary'].get('train_loss', float('nan')):.3f}"
    return ""


# --------------------------------------------------------------------------------------------
# pytest fixtures (this module is a pytest plugin: entry point pytest11 "numpyml")
# --------------------------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # the kit's functions work without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def numpyml_rng() -> np.random.Generator:
        """A NumPy generator seeded with 0."""
        return np.random.default_rng(0)

    @pytest.fixture
    def numpyml_manager() -> Iterator[Any]:
        """A fresh plugin manager with every installed plugin loaded, process-wide for the test."""
        from numpyml_core import PluginManager

        manager = PluginManager()
        manager.load_entry_points()
        with _as_process_manager(manager):
            yield manager

    @pytest.fixture
    def numpyml_plugin() -> Callable[[Any], dict[tuple[str, str], Any]]:
        """:func:`plugin_components`, skipping the test when the distribution it is given is not installed:
        ``numpyml_plugin(my_plugin)[("layer", "my_layer")].factory is MyLayer``."""

        def load(plugin: Any) -> dict[tuple[str, str], Any]:
            try:
                return plugin_components(plugin)
            except NotInstalled as exc:
                pytest.skip(str(exc))

        return load

    @pytest.fixture
    def numpyml_tiny_experiment(tmp_path: Path) -> Callable[..., tuple[dict[str, Any], Any]]:
        """:func:`run_tiny_experiment` writing its run folder under ``tmp_path``."""
        counter = iter(range(1_000_000))

        def run(kind: str, component: Any, params: dict[str, Any] | None = None, **kwargs: Any):
            kwargs.setdefault("output_dir", tmp_path / f"tiny-run-{next(counter)}")
            return run_tiny_experiment(kind, component, params, **kwargs)

        return run
