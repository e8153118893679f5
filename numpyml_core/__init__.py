"""numpyml core: protocols, hook specifications, plugin registry, experiments, trainer, the Python API
(docs/api.md: ``nm.Experiment.load``, ``nm.run``, ``nm.load_model``, ``nm.evaluate``), CLI. Plugins: docs/plugins.md.
Importing this package imports neither a plugin nor NumPy: the API's names load their modules when used."""

from .bundled import bundled_experiments, experiment_path
from .errors import ConfigError, MissingExtra, PluginError, PluginWarning, RunFailed, RunFolderInUse, UserError
from .plugins import Component, PluginManager, create, create_from_spec, get_plugin_manager, hookimpl
from .runfolder import RunFolder

__version__ = "0.1.0"

#: the Python API's names, loaded from numpyml_core.api when first used (see __getattr__)
_API = ("Experiment", "RunResult", "TrainingInterrupted", "evaluate", "load_model", "parse_overrides", "resume", "run")
__all__ = [*_API, "RunFolder", "ConfigError", "MissingExtra", "PluginError", "PluginWarning", "RunFailed",
           "RunFolderInUse", "UserError", "Component", "PluginManager", "create", "create_from_spec",
           "get_plugin_manager", "hookimpl", "KINDS", "bundled_experiments", "experiment_path", "__version__"]


def __getattr__(name: str):
    # protocols and api import numpy: loaded when first used, so "numpyml --help" does not pay for it
    if name == "KINDS":
        from .protocols import KINDS

        return KINDS
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'numpyml_core' has no attribute {name!r}")
