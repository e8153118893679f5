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


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("callback", "tensorboard", "numpyml_loggers.tensorboard_logger:TensorBoardLogger")
    register("callback", "mlflow", "numpyml_loggers.mlflow_logger:MLflowLogger")
