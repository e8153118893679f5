"""numpyml built-in plugin: the plugin-author kit, commands ``new-plugin`` and ``check``, the scaffold templates and the
pytest test kit (:mod:`numpyml_kit.testing`, a pytest plugin through the ``pytest11`` entry point).

A built-in plugin (entry point ``kit`` in numpyml's ``numpyml`` group) that adds commands through the
``numpyml_register_commands`` hook, as a third-party plugin would. Loading it imports no NumPy.
"""

from __future__ import annotations

from typing import Any

from numpyml_core import hookimpl

__all__ = ["numpyml_register_commands"]


@hookimpl
def numpyml_register_commands(app: Any) -> None:
    """Add ``new-plugin`` and ``check``."""
    from . import commands  # typer and the commands' options: only when the command line starts

    commands.register(app)
