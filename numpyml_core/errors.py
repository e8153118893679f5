"""Errors meant for people."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake the user can fix (a bad experiment file, a missing data file, ...).

    The CLI prints the message (one paragraph, naming the file and key and what was expected) and
    exits with status 2, never a traceback.
    """

    exit_code = 2


class ConfigError(UserError):
    """An experiment file or component parameter that does not validate."""


class RunFailed(UserError):
    """Training could not go on for a reason outside the experiment file: a worker process or a
    cluster node died, a cluster could not be reached. The CLI prints the message (which names the
    worker, node or address and the cause) and exits with status 1, without a traceback."""

    exit_code = 1


class MissingExtra(UserError):
    """An optional dependency of a component (an extra such as ``numpyml[mlflow]``) is not installed.

    Raised by a component when it is built without the library it needs; the message says what to
    install. ``numpyml run`` prints it and exits with status 2; ``numpyml check`` reports the
    component as skipped, not failed. Third-party plugins can raise it the same way.
    """


class PluginError(Exception):
    """A plugin that failed to import or register (or two plugins that clash)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
