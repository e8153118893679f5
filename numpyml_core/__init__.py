"""numpyml core: protocols, hook specifications, plugin registry, experiments, trainer, the Python API, CLI.

The Python API (see docs/api.md)::

    import numpyml_core as nm
    exp = nm.Experiment.load("experiments/mnist.toml", overrides={"training.epochs": 1})
    result = nm.run(exp, output="runs/x")          # result.summary, result.run_dir, result.model
    model = nm.load_model("runs/x/model.safetensors")
    nm.evaluate(model, dataset="mnist", split="test")

The public contract for plugins::

    from numpyml_core import hookimpl

    @hookimpl
    def numpyml_register_components(register):
        register("layer", "swish", Swish)

The core never imports a plugin: every concrete component arrives through the ``numpyml``
entry-point group. Importing this package imports no plugin and not NumPy: the API's names load
their modules when first used.
"""

from . import blas  # noqa: F401 - first, before anything imports NumPy: sets OPENBLAS_THREAD_TIMEOUT (see blas.py)
from .bundled import bundled_experiments
from .errors import ConfigError, MissingExtra, PluginError, PluginWarning, RunFailed, UserError
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
from .runfolder import RunFolder

__version__ = "0.1.0"

__all__ = [
    "Experiment",
    "RunResult",
    "TrainingInterrupted",
    "evaluate",
    "load_model",
    "parse_overrides",
    "resume",
    "run",
    "RunFolder",
    "ConfigError",
    "MissingExtra",
    "PluginError",
    "PluginWarning",
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
    "bundled_experiments",
    "__version__",
]


_API = ("Experiment", "RunResult", "TrainingInterrupted", "evaluate", "load_model", "parse_overrides", "resume", "run")


def __getattr__(name: str):
    # numpyml_core.protocols and .api import numpy; loading them only when their names are used
    # keeps "numpyml --help" from paying for numpy.
    if name == "KINDS":
        from .protocols import KINDS

        return KINDS
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'numpyml_core' has no attribute {name!r}")
