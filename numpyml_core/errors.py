"""Errors meant for people."""

from __future__ import annotations

import difflib
import reprlib
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


class PluginWarning(UserWarning):
    """Something in an installed plugin is ignored (it still loads): for instance a training hook
    defined at module level, which never runs (training hooks belong to a run's callbacks)."""


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


_SHORT_LIMIT = 80


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel = 3  # bounded depth: a value nested thousands deep is shown as [[[...]]]
    r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdeque = r.maxarray = 6
    r.maxdict = 4
    r.maxstring = 60
    r.maxlong = 40
    r.maxother = 60
    return r


def shorten(value: object, limit: int = _SHORT_LIMIT) -> str:
    """``repr(value)`` cut for an error message: at most about ``limit`` characters, with ``...``
    where it was cut and the length of a long list, table or string noted (``[1, 1, 1, ...]
    (300,000 items)``), so a huge or deeply nested value from a file never floods the terminal.
    Uses :mod:`reprlib`, whose output is bounded whatever the value's size and depth."""
    text = _short_repr().repr(value)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    if isinstance(value, str) and len(value) > 40:
        text += f" ({len(value):,} characters)"
    elif isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > 6:
        text += f" ({len(value):,} items)"
    return text


def nested_beyond(value: object, limit: int) -> tuple[object, ...] | None:
    """The key path (keys and list indices) to the first list or table of ``value`` that lies
    ``limit`` or more levels below it, or ``None`` when nothing nests that deep. Iterative (no
    recursion, whatever the depth), so untrusted input (an experiment file, a model file's JSON
    metadata) can be checked before anything walks it recursively."""
    stack: list[tuple[object, tuple[object, ...]]] = [(value, ())]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            children = list(node.items())
        elif isinstance(node, (list, tuple)):
            children = list(enumerate(node))
        else:
            continue
        if len(where) >= limit:
            return where
        stack.extend((child, (*where, key)) for key, child in children)
    return None
