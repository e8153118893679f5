"""Shared helpers of the logger callbacks."""

from __future__ import annotations

import importlib
import math
from typing import Any

from numpyml_core import MissingExtra


def import_extra(module: str, package: str, extra: str, callback: str) -> Any:
    """Import an optional dependency, or raise :class:`~numpyml_core.errors.MissingExtra` naming the extra
    that installs it (``numpyml check`` then reports the callback as skipped)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"callback '{callback}' needs {package}, which is not installed ({exc}). It is an optional dependency "
            f"of numpyml: install it with `pip install 'numpyml[{extra}]'` (or `uv pip install {package}` in this "
            f"project's environment), or remove the [[callbacks]] type = \"{callback}\" table from the experiment."
        ) from None


def epoch_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of an epoch's metrics row, ``epoch`` left out."""
    out = {}
    for key, value in metrics.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out
