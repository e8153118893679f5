"""The public plugin API: everything a plugin may import from numpyml besides ``numpyml_core``'s top-level names.

The built-in plugins use nothing else (tests/test_architecture.py checks), so a third-party plugin can do
whatever a built-in does. docs/plugins.md ("The public plugin API") lists every name. The modules that define
them are private. Names load their module when first used (PEP 562): importing this imports neither NumPy
nor typer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> (private module of numpyml_core, name there)
_NAMES: dict[str, tuple[str, str]] = {
    # experiments and models: rebuilding a run's network in a worker, validating an experiment
    "parse_experiment": ("config", "parse_experiment"),
    "build_model": ("trainer", "build_model"),
    "validate_experiment": ("trainer", "check"),
    "signature_of": ("config", "signature_of"),
    "set_plugin_manager": ("plugins", "set_plugin_manager"),
    "hookspecs": ("hookspecs", None),
    # update strategies
    "share_ranges": ("arrays", "share_ranges"),
    "as_float": ("arrays", "as_float"),
    "StalenessCompensation": ("staleness", "StalenessCompensation"),
    "STALENESS_RULES": ("staleness", "RULES"),
    "check_workers": ("workers", "check_workers"),
    # BLAS threads (one process-wide setting)
    "blas_threads": ("blas", "blas_threads"),
    "blas_thread_limit": ("blas", "blas_thread_limit"),
    "blas_thread_count": ("blas", "blas_thread_count"),
    "can_limit_blas_threads": ("blas", "can_limit_blas_threads"),
    "SHORT_WAIT": ("blas", "SHORT_WAIT"),
    # datasets
    "ArraySplit": ("data", "ArraySplit"),
    "data_dir_from_env": ("data", "data_dir_from_env"),
    # files: atomic writes, safe tensors, model files, run-folder names
    "atomic_write_text": ("io", "atomic_write_text"),
    "atomic_write_bytes": ("io", "atomic_write_bytes"),
    "save_tensors": ("serialization", "save_tensors"),
    "load_tensors": ("serialization", "load_tensors"),
    "read_metadata": ("serialization", "read_metadata"),
    "read_model": ("serialization", "load_model"),
    "read_architecture": ("serialization", "read_architecture"),
    "loading_placeholder": ("serialization", "loading_placeholder"),
    "check_plain_file_name": ("runfolder", "check_plain_file_name"),
    # commands added by plugins
    "user_errors": ("commands", "user_errors"),
    "plugin_manager": ("commands", "plugin_manager"),
    "components_of_kind": ("commands", "components_of_kind"),
    # messages
    "did_you_mean": ("errors", "did_you_mean"),
    "shorten": ("errors", "shorten"),
}

__all__ = sorted(_NAMES)

if TYPE_CHECKING:  # what type checkers and editors see; at run time the names load lazily below
    from . import hookspecs
    from .arrays import as_float, share_ranges
    from .blas import SHORT_WAIT, blas_thread_count, blas_thread_limit, blas_threads, can_limit_blas_threads
    from .commands import components_of_kind, plugin_manager, user_errors
    from .config import parse_experiment, signature_of
    from .data import ArraySplit, data_dir_from_env
    from .errors import did_you_mean, shorten
    from .io import atomic_write_bytes, atomic_write_text
    from .plugins import set_plugin_manager
    from .runfolder import check_plain_file_name
    from .serialization import load_model as read_model
    from .serialization import load_tensors, loading_placeholder, read_architecture, read_metadata, save_tensors
    from .staleness import RULES as STALENESS_RULES
    from .staleness import StalenessCompensation
    from .trainer import build_model
    from .trainer import check as validate_experiment
    from .workers import check_workers


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
