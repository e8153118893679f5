"""numpyml built-in plugin: ``numpyml export MODEL --format onnx --out FILE``.

A command-only plugin (entry point ``onnx``): loading it imports neither NumPy nor onnx; the command
imports them when it runs (``pip install 'numpyml[onnx]'``).

* :mod:`.exporter`: the network as an ONNX graph (opset :data:`.exporter.OPSET`, IR
  :data:`.exporter.IR_VERSION`), built-in layers converted by class, others by their ``to_onnx`` method.
* :mod:`.commands`: the ``export`` command.
"""

from __future__ import annotations

from typing import Any

from numpyml_core import hookimpl

__all__ = ["numpyml_register_commands"]


@hookimpl
def numpyml_register_commands(app: Any) -> None:
    """Add ``export``."""
    from . import commands

    commands.register(app)
