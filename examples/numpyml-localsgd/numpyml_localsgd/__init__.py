"""numpyml-localsgd: a numpyml plugin adding the ``local_sgd`` update strategy.

numpyml finds this module through the ``numpyml`` entry point in pyproject.toml and calls
``numpyml_register_components`` once; ``numpyml list --kind strategy`` then shows ``local_sgd`` with
this distribution's name and version.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .strategy import LocalSGD

__version__ = "0.1.0"

__all__ = ["LocalSGD", "__version__"]


@hookimpl
def numpyml_register_components(register):
    register("strategy", "local_sgd", LocalSGD)  # [training.strategy] type = "local_sgd"
