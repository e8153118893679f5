"""numpyml core: protocols, hook specifications, plugin registry, experiments, trainer, CLI.

The public contract for plugins::

    from numpyml_core import hookimpl

    @hookimpl
    def numpyml_register_components(register):
        register("layer", "swish", Swish)

The core never imports a plugin: every concrete component arrives through the ``numpyml``
entry-point group.
"""

from . import blas  # noqa: F401 - first, before anything imports NumPy: sets OPENBLAS_THREAD_TIMEOUT (see blas.py)
from .errors import ConfigError, MissingExtra, PluginError, RunFailed, UserError
from .plugins import (
    Component,
    PluginManager,
    component_table,
    create,
    create_from_spec,
    get_plugin_manager,
    hookimpl,
    lazy_exports,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "MissingExtra",
    "PluginError",
    "RunFailed",
    "UserError",
    "Component",
    "component_table",
    "PluginManager",
    "create",
    "create_from_spec",
    "get_plugin_manager",
    "hookimpl",
    "lazy_exports",
    "KINDS",
    "__version__",
]


def __getattr__(name: str):
    # numpyml_core.protocols imports numpy; loading it only when KINDS is used keeps
    # "numpyml --help" from paying for numpy.
    if name == "KINDS":
        from .protocols import KINDS

        return KINDS
    raise AttributeError(f"module 'numpyml_core' has no attribute {name!r}")
