"""numpyml built-in plugin: ``numpyml summary EXPERIMENT.toml | MODEL.safetensors``.

A command-only plugin (entry point ``summary``) whose :mod:`.commands` prints a Keras-style table of a
network: per layer its type, output shape, parameters and multiply-adds per sample, then totals and the
memory of the parameters and of a batch's activations. Loading it imports neither NumPy nor rich.
"""

from __future__ import annotations

from typing import Any

from numpyml_core import hookimpl

__all__ = ["numpyml_register_commands"]


@hookimpl
def numpyml_register_commands(app: Any) -> None:
    """Add ``summary``."""
    from . import commands

    commands.register(app)
