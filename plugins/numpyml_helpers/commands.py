"""For commands (hook ``numpyml_register_commands``): :func:`user_errors` turns what a user can fix into one
paragraph on stderr and an exit status; :func:`components_of_kind` picks the installed components of one kind."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import typer

from numpyml_core import PluginError, UserError
from numpyml_core.plugin_api import did_you_mean, error

__all__ = ["components_of_kind", "user_errors"]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print what a command's user can fix as one paragraph on stderr, no traceback, and exit: with the
    ``exit_code`` of a :class:`UserError` (2), 1 for a :class:`PluginError`, 2 for no memory or a disk error."""
    try:
        yield
    except (UserError, PluginError) as exc:
        error(str(exc))
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None
    except MemoryError as exc:
        error(f"out of memory ({exc or 'MemoryError'}): reduce [training] batch_size or eval_batch_size, or the size "
              "of the network.")
        raise typer.Exit(2) from None
    except OSError as exc:  # the disk, not the program: full, read-only, vanished folders
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}. No file was left half-written (numpyml writes each file under a "
              "temporary name, then renames it); free space or choose another --output and run again (or resume).")
        raise typer.Exit(2) from None


def components_of_kind(components: list[Any], kind: str, prefix: str = "") -> list[Any]:
    """The ``components`` of ``kind``; none is a :class:`UserError` (after ``prefix``) naming the kinds there are."""
    kinds = sorted({c.kind for c in components})
    if kind not in kinds:
        raise UserError(f"{prefix}no installed component of kind '{kind}'{did_you_mean(kind, kinds)}; "
                        f"installed kinds: {', '.join(kinds)}.")
    return [c for c in components if c.kind == kind]
