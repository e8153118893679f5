"""Small helpers shared by the layers of this plugin."""

from __future__ import annotations

from typing import Any

import numpy as np

from numpyml_core import create_from_spec as component_from_spec  # noqa: F401 - re-exported
from numpyml_core.plugin_api import as_float  # noqa: F401 - re-exported


def match_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype`` (no copy when it already is)."""
    return array if array.dtype == dtype else array.astype(dtype)


def require_forward(cached: Any, layer: Any) -> None:
    if cached is None:
        raise RuntimeError(f"{type(layer).__name__}.backward() called before forward()")
