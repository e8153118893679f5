"""For components whose parameters are other components (a layer's ``activation``, ``weight_initializer``):
:func:`create_from_spec`."""

from __future__ import annotations

from typing import Any

from numpyml_core import ConfigError, create
from numpyml_core.plugin_api import shorten

__all__ = ["create_from_spec"]


def create_from_spec(kind: str, spec: Any, what: str) -> Any:
    """Build a component given as another's parameter ``what`` (a layer's ``activation``): a registered name
    (``"relu"``), a table (``{type = "leaky_relu", alpha = 0.2}``) or a built object; ``ValueError`` if unusable."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("type", None)
        if not isinstance(name, str):
            raise ValueError(f"{what}: a table needs a key 'type' naming a registered {kind}, got {shorten(spec)}")
    elif callable(spec) or hasattr(spec, "forward"):
        return spec
    else:
        raise ValueError(f"{what}: expected the name of a {kind} or a table {{type = ...}}, got {shorten(spec)}")
    try:
        return create(kind, name, **params)
    except ConfigError as exc:
        raise ValueError(f"{what}: {exc}") from None
