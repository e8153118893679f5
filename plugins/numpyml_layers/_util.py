"""Small helpers shared by the layers of this plugin."""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyml_core import ConfigError, create


def component_from_spec(kind: str, spec: Any, what: str) -> Any:
    """Build a component from a config value: a registered name (``"relu"``), a table
    (``{type = "leaky_relu", alpha = 0.2}``), or an already built object (programmatic use).

    Components are always built through :func:`numpyml_core.create`, so third-party ones work too.
    Raises ``ValueError`` naming ``what`` (the parameter) when the spec is not usable.
    """
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("type", None)
        if not isinstance(name, str):
            raise ValueError(
                f"{what}: a table needs a key 'type' naming a registered {kind}, got {spec!r}"
            )
    elif callable(spec) or hasattr(spec, "forward"):
        return spec
    else:
        raise ValueError(f"{what}: expected the name of a {kind} or a table {{type = ...}}, got {spec!r}")
    try:
        return create(kind, name, **params)
    except ConfigError as exc:
        raise ValueError(f"{what}: {exc}") from None


def match_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype`` (no copy when it already is)."""
    return array if array.dtype == dtype else array.astype(dtype)


def as_float(x: np.ndarray) -> np.ndarray:
    """``x`` as a floating-point array: float inputs keep their dtype, others become float32."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def require_forward(cached: Any, layer: Any) -> None:
    if cached is None:
        raise RuntimeError(f"{type(layer).__name__}.backward() called before forward()")
