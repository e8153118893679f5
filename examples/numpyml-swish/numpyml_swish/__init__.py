"""numpyml-swish: a numpyml plugin adding the swish activation, a swish layer with a learned
slope, a spiral dataset and a stop-at-target training callback.

numpyml finds this module through the ``numpyml`` entry point in pyproject.toml and calls
``numpyml_register_components`` once; ``numpyml list`` then shows every component below with this
distribution's name and version.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .callbacks import StopAtTarget
from .spirals import Spirals
from .swish import LearnedSwish, Swish

__version__ = "0.1.0"

__all__ = ["LearnedSwish", "Spirals", "StopAtTarget", "Swish", "__version__"]


@hookimpl
def numpyml_register_components(register):
    register("activation", "swish", Swish)  # dense(activation = "swish")
    register("layer", "swish", Swish)  # a standalone [[model.layers]] entry
    register("layer", "learned_swish", LearnedSwish)
    register("dataset", "spirals", Spirals)
    register("callback", "stop_at_target", StopAtTarget)
