"""How many workers a strategy may start (local processes, or Ray actors on this machine).

At most :data:`FACTOR` per core, unless raised.

``workers = 1000`` would start processes until the machine runs out of memory (every worker is a
Python interpreter with NumPy and a copy of the network), and the kernel's OOM killer, not numpyml,
would end the run. More workers than a few per core never run faster, so the local strategies
(``sync``, ``async``) and a Ray cluster started on this machine refuse more than
``FACTOR x os.cpu_count()`` at validation. The environment variable :data:`ENV` sets another limit
(``NUMPYML_MAX_WORKERS=64``), for whoever really means it.
"""

from __future__ import annotations

import os

from .errors import shorten

#: workers allowed per core (``os.cpu_count()``) unless :data:`ENV` says otherwise
FACTOR = 4
#: the environment variable that replaces the limit
ENV = "NUMPYML_MAX_WORKERS"


def max_workers() -> int:
    """The largest ``workers`` allowed: ``$NUMPYML_MAX_WORKERS`` if set, else ``FACTOR x`` the core count.
    Raises ``ValueError`` when the variable is not a positive integer."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return FACTOR * (os.cpu_count() or 1)
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"the environment variable {ENV} must be a positive integer (the most workers a "
                         f"strategy may start), got {shorten(value)}")
    return limit


def check_workers(workers: object) -> None:
    """Raise ``ValueError`` unless ``workers`` is a positive integer within :func:`max_workers`."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {shorten(workers)}")
    limit = max_workers()
    if workers > limit:
        if os.environ.get(ENV, "").strip():
            why = f"the limit {ENV}={limit} set in the environment"
        else:
            why = f"at most {limit}, {FACTOR} per core on this machine's {os.cpu_count() or 1} cores"
        raise ValueError(
            f"workers = {workers} is more worker processes than allowed ({why}): each is a Python process "
            f"with its own copy of the network, and more than a few per core only slow the run down. Use "
            f"fewer, or set the environment variable {ENV} to a higher limit if you mean it."
        )
