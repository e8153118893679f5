"""Small array helpers shared by the built-in plugins (and free for third-party ones)."""

from __future__ import annotations

import numpy as np


def as_float(x: np.ndarray) -> np.ndarray:
    """``x`` as a floating-point array: float inputs keep their dtype, others become float32."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)  # kind: 0.1 us, np.issubdtype: 1 us per call


def share_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` split for ``parts`` workers or threads: ``min(parts, n)`` (at least one) contiguous
    ``(start, stop)`` ranges, as equal as possible (the first ones one longer)."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    bounds = [k * size + min(k, extra) for k in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
