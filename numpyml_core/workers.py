"""How many workers a strategy may start: at most 4 per core, unless ``NUMPYML_MAX_WORKERS`` says otherwise
(why: docs/parallel.md)."""

from __future__ import annotations

import os

from .errors import shorten

#: workers allowed per core (``os.cpu_count()``) unless :data:`ENV` says otherwise
FACTOR = 4
#: the environment variable that replaces the limit
ENV = "NUMPYML_MAX_WORKERS"


def validate_worker_count(workers: object) -> None:
    """Raise ``ValueError`` unless ``workers`` is a positive integer within the limit."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {shorten(workers)}")
    cores = os.cpu_count() or 1
    value = os.environ.get(ENV, "").strip()
    try:
        limit = int(value) if value else FACTOR * cores
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"the environment variable {ENV} must be a positive integer (the most workers a "
                         f"strategy may start), got {shorten(value)}")
    if workers > limit:
        why = (f"the limit {ENV}={limit} set in the environment" if value
               else f"at most {limit}, {FACTOR} per core on this machine's {cores} cores")
        raise ValueError(
            f"workers = {workers} is more worker processes than allowed ({why}): each is a Python process "
            f"with its own copy of the network, and more than a few per core only slow the run down. Use "
            f"fewer, or set the environment variable {ENV} to a higher limit if you mean it."
        )
