"""numpyml built-in plugin: the commands ``run``, ``resume``, ``validate`` and ``eval``, each a thin shell over the
Python API (``numpyml_core.run``, ``resume``, ``Experiment.validate``, ``evaluate``).

Registered under the entry point ``runner`` and adding its commands through the ``numpyml_register_commands`` hook,
as a third-party plugin would; loading it imports neither NumPy nor the API.
"""

from __future__ import annotations

from typing import Any

from numpyml_core import hookimpl

__all__ = ["numpyml_register_commands"]


@hookimpl
def numpyml_register_commands(app: Any) -> None:
    """Add ``run``, ``resume``, ``validate`` and ``eval``."""
    from . import commands

    app.command("run")(commands.run)
    app.command("resume")(commands.resume)
    app.command("validate")(commands.validate)
    app.command("eval")(commands.evaluate)
