"""numpyml's helper library for component authors: building blocks that plugins, built-in and third-party alike,
may use (docs/plugins.md, "The public plugin API"). Not a plugin and not the core: written with the core's public
API only, as any third party's code, and imported by no core module. Names load their module when first used."""

from __future__ import annotations

import importlib
from typing import Any

#: module of this package -> the public names it defines
_MODULES: dict[str, tuple[str, ...]] = {
    "arrays": ("as_float", "share_ranges"),
    "data": ("ArraySplit",),
    "workers": ("GradientWorker", "validate_worker_count"),
    "components": ("create_from_spec",),
    "commands": ("components_of_kind", "user_errors"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'numpyml_helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
