"""numpyml built-in plugin: the report commands ``report``, ``runs``, ``show`` and ``predict``, which look at runs.

A built-in plugin (entry point ``report`` in numpyml's ``numpyml`` group) that adds commands through
the ``numpyml_register_commands`` hook, as a third-party plugin would; loading it imports no NumPy,
matplotlib or Pillow (the commands import what they need when they run).

* :mod:`.commands`: the four commands.

* :mod:`.rundata`: a run folder's files (config.toml, metrics.csv, summary.json, model.safetensors)
  read into a :class:`~.rundata.RunData`; flattened configs; text sparklines. Standard library only.
* :mod:`.inference`: a saved model's class probabilities, batch by batch; the dataset a model was
  trained on; converting image files to a model's input (Pillow, imported when used).
* :mod:`.plots`: the report's figures as PNG bytes (matplotlib with the Agg backend, imported when
  used).
* :mod:`.html`: the self-contained report page.

matplotlib and Pillow are optional (``pip install 'numpyml[plot]'``); :func:`require` turns their
absence into one clear :class:`~numpyml_core.errors.MissingExtra` (a ``UserError``).
"""

from __future__ import annotations

import importlib
from typing import Any

from numpyml_core import MissingExtra, hookimpl  # noqa: F401 - the optional-dependency error, importable from here too

__all__ = ["EXTRAS", "MissingExtra", "numpyml_register_commands", "require"]

#: module -> (what needs it, the extra that installs it)
EXTRAS = {
    "matplotlib": ("plots for 'numpyml report'", "plot"),
    "PIL": ("reading images (Pillow)", "plot"),
}


def require(module: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtra` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        purpose, extra = EXTRAS.get(module, (module, module))
        package = "Pillow" if module == "PIL" else module
        raise MissingExtra(
            f"{purpose} needs {package}, which is not installed. It is an optional dependency of numpyml: "
            f"install it with `pip install 'numpyml[{extra}]'` (or `uv pip install {package.lower()}` in "
            "this project's environment), then run the command again."
        ) from None


@hookimpl
def numpyml_register_commands(app: Any) -> None:
    """Add ``report``, ``runs``, ``show`` and ``predict``."""
    from . import commands  # typer and the commands' options: only when the command line starts

    commands.register(app)
