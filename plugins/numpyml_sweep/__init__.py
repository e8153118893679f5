"""numpyml built-in plugin: ``numpyml sweep`` (many trials of an experiment, on local cores or a Ray
cluster) and ``numpyml experiments`` (the bundled experiment files).

A built-in plugin (entry point ``sweep`` in numpyml's ``numpyml`` group) that adds commands through
the ``numpyml_register_commands`` hook, as a third-party plugin would, and runs experiments through
the Python API (``numpyml_core.Experiment``, ``numpyml_core.run``). Loading it imports neither NumPy
nor Ray. docs/sweeps.md is the user's guide.

* :mod:`.commands`: the two commands' options.
* :mod:`.space`: ``--grid``, ``--random``, ``--set`` parsed and checked; the trials they make and their
  run folders' names. Standard library only.
* :mod:`.sweep`: validating every trial, then running those not finished; the final table.
* :mod:`.runner`: the sweep folder (sweep.json, sweep.csv, a lock) and the trials' processes, local
  (``--jobs``) or as Ray tasks (``--ray``); Ctrl-C forwarded to each trial once.
* :mod:`.trial`: one trial in a process of its own (``python -m numpyml_sweep.trial``).
* :mod:`.catalog`: the bundled experiments described from their header comments.
"""

from __future__ import annotations

from typing import Any

from numpyml_core import hookimpl

__all__ = ["numpyml_register_commands"]


@hookimpl
def numpyml_register_commands(app: Any) -> None:
    """Add ``sweep`` and ``experiments``."""
    from . import commands  # typer and the options: only when the command line starts

    commands.register(app)
