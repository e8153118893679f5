"""Errors meant for people, and helpers for their messages."""

from __future__ import annotations

import difflib
import reprlib
from typing import Iterable


class UserError(Exception):
    """A mistake the user can fix: the CLI prints the message (file, key, what was expected), exit status 2."""

    exit_code = 2


class ConfigError(UserError):
    """An experiment file or component parameter that does not validate."""


class RunFailed(UserError):
    """Training could not go on for a reason outside the experiment (a worker or node died): exit status 1."""

    exit_code = 1


class RunFolderInUse(UserError):
    """Another process holds the run folder's lock (a run or resume in progress there)."""


class PluginWarning(UserWarning):
    """Something in an installed plugin is ignored, such as a training hook defined at module level."""


class MissingExtra(UserError):
    """A component's optional dependency (an extra such as ``numpyml[mlflow]``) is not installed."""


class PluginError(Exception):
    """A plugin that failed to import or register (or two plugins that clash)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_REPR = reprlib.Repr()  # bounded output whatever the value's size and depth
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = _REPR.maxarray = 6
_REPR.maxdict, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 4, 60, 40, 60


def shorten(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters for a message: ``[1, 1, 1, ...] (300,000 items)``."""
    text = _REPR.repr(value)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    if isinstance(value, str) and len(value) > 40:
        text += f" ({len(value):,} characters)"
    elif isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > 6:
        text += f" ({len(value):,} items)"
    return text


def nested_beyond(value: object, limit: int) -> tuple[object, ...] | None:
    """The key path to the first list or table of ``value`` ``limit`` or more levels deep, or ``None``.
    Iterative, so untrusted input can be checked before anything walks it recursively."""
    stack: list[tuple[object, tuple[object, ...]]] = [(value, ())]
    while stack:
        node, where = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if len(where) >= limit:
                return where
            children = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((child, (*where, key)) for key, child in children)
    return None
