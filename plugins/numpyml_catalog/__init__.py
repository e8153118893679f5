"""numpyml built-in plugin: ``numpyml list`` (every installed component and failed plugin) and ``numpyml info``
(a component's parameters and documentation).

Registered under the entry point ``catalog`` and adding its commands through the ``numpyml_register_commands``
hook, as a third-party plugin would; loading it imports neither NumPy nor rich.
"""

from __future__ import annotations

from typing import Any

from numpyml_core import hookimpl

__all__ = ["numpyml_register_commands"]


@hookimpl
def numpyml_register_commands(app: Any) -> None:
    """Add ``list`` and ``info``."""
    from . import commands  # typer and rich: only when the command line starts

    app.command("list")(commands.list_components)
    app.command("info")(commands.info)
