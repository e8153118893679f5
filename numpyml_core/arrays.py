"""Small array helpers shared by the built-in plugins (and free for third-party ones)."""

from __future__ import annotations

import numpy as np


def as_float(x: np.ndarray) -> np.ndarray:
    """``x`` as a floating-point array: float inputs keep their dtype, others become float32."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
