"""numpyml built-in plugin: loggers for TensorBoard and MLflow (callbacks).

Select them in an experiment file::

    [[callbacks]]
    type = "tensorboard"          # pip install 'numpyml[tensorboard]'
    every_n_batches = 50

    [[callbacks]]
    type = "mlflow"               # pip install 'numpyml[mlflow]'

Neither library is imported when this plugin is loaded: only when its callback is created, which
fails at once (before training) with a message naming the extra to install when it is missing.
"""

from __future__ import annotations

from numpyml_core import hookimpl

from .mlflow_logger import MLflowLogger
from .tensorboard_logger import TensorBoardLogger


@hookimpl
def numpyml_register_components(register):
    register("callback", "tensorboard", TensorBoardLogger)
    register("callback", "mlflow", MLflowLogger)
