"""The public plugin API: all a plugin may import from numpyml besides ``numpyml_core``'s top-level names, and all
the built-ins use (docs/plugins.md lists it). Names load their private module when first used (PEP 562)."""

from __future__ import annotations

import importlib
from typing import Any

#: private module of numpyml_core -> the public names it defines (docs/plugins.md says what each is for)
_MODULES: dict[str, tuple[str, ...]] = {
    "config": ("parse_experiment", "signature_of", "describe_params", "dumps_toml"),
    "trainer": ("build_model", "validate_experiment", "Update", "GradientWorker"),
    "plugins": ("set_plugin_manager",),
    "arrays": ("share_ranges", "as_float"),
    "workers": ("validate_worker_count",),
    "data": ("ArraySplit", "data_dir_from_env"),
    "io": ("atomic_write_text", "atomic_write_bytes"),
    "serialization": ("save_tensors", "load_tensors", "read_metadata", "read_architecture", "loading_placeholder"),
    "runfolder": ("validate_file_name",),
    "cli": ("user_errors", "plugin_manager", "components_of_kind", "messages_to_stderr", "error"),
    "errors": ("did_you_mean", "shorten"),
}
#: public name -> (private module, name there; ``None``: the module itself)
_NAMES: dict[str, tuple[str, str | None]] = {
    **{name: (module, name) for module, names in _MODULES.items() for name in names},
    "read_model": ("serialization", "load_model"),
    "hookspecs": ("hookspecs", None),
}

__all__ = sorted(_NAMES)

def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _NAMES[name]
    except KeyError:
        raise AttributeError(f"module 'numpyml_core.plugin_api' has no attribute {name!r}") from None
    module = importlib.import_module(f"{__package__}.{module_name}")
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
