"""Parameter initializers.

Each is a class whose constructor arguments are its config schema and whose instances are called as
``initializer(shape, rng, dtype=np.float32) -> array`` (randomness only from ``rng``, a
:class:`numpy.random.Generator`). Fan-in and fan-out follow Keras, see :func:`fans`.

While a model file is loaded, every initializer here returns a zero placeholder instead of drawing
(the stored weights overwrite it) and refuses a shape larger than any stored tensor:
:func:`numpyml_core.plugin_api.loading_placeholder`, which third-party initializers should call
first too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np

from numpyml_core import create_from_spec
from numpyml_core.plugin_api import loading_placeholder

#: Where :func:`available_memory` reads the host's free memory (``MemAvailable``) and a container's
#: memory limit and usage (cgroup v2, then cgroup v1); module constants so that tests can point them
#: at fake files.
MEMINFO = Path("/proc/meminfo")
CGROUP_V2_MAX = Path("/sys/fs/cgroup/memory.max")
CGROUP_V2_CURRENT = Path("/sys/fs/cgroup/memory.current")
CGROUP_V1_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
CGROUP_V1_USAGE = Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a parameter shape, the Keras way.

    * ``()``: ``(1, 1)``; ``(n,)``: ``(n, n)``;
    * dense weight ``(in, out)``: ``(in, out)``;
    * convolution weight ``(kh, kw, in, out)`` (any number of leading kernel axes):
      ``(kh*kw*in, kh*kw*out)``.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _read_int(path: Path) -> int | None:
    """The integer in a one-line file; ``None`` when absent, unreadable, not an integer or ``max``."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _host_available() -> int | None:
    try:
        with open(MEMINFO) as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    """What the memory limit of this process's cgroup (a container's) leaves: the limit minus the
    usage, from cgroup v2 (``memory.max``, ``"max"`` meaning no limit) or else cgroup v1
    (``memory.limit_in_bytes``, a huge number meaning none); ``None`` without a limit."""
    for limit_file, usage_file in ((CGROUP_V2_MAX, CGROUP_V2_CURRENT), (CGROUP_V1_LIMIT, CGROUP_V1_USAGE)):
        limit = _read_int(limit_file)
        if limit is None:
            continue
        if limit >= 1 << 60:  # cgroup v1's "unlimited" (a page-rounded 2^63 - 1)
            return None
        return max(0, limit - (_read_int(usage_file) or 0))
    return None


def available_memory() -> int | None:
    """Bytes of memory available to new allocations without swapping, ``None`` where unknown: the
    smaller of the host's ``MemAvailable`` (``/proc/meminfo``) and what the cgroup memory limit (a
    container's, cgroup v2 ``memory.max`` minus ``memory.current``, or cgroup v1) leaves."""
    figures = [value for value in (_host_available(), _cgroup_available()) if value is not None]
    return min(figures) if figures else None


def require_memory(shape: tuple[int, ...], dtype: Any) -> None:
    """``MemoryError`` before a random draw of ``shape`` that cannot fit in memory: the draw
    is float64 and then converted to ``dtype``. Linux grants allocations larger than what it has
    (overcommit), and filling one ends the process without a message (the OOM killer), in a
    container as soon as the draw passes the container's limit: so the smaller of the host's free
    memory and the container's is used (:func:`available_memory`)."""
    need = math.prod(int(d) for d in shape) * (8 + np.dtype(dtype).itemsize)
    available = available_memory()
    if available is not None and need > available:
        raise MemoryError(f"drawing a {'x'.join(str(int(d)) for d in shape)} parameter needs {_size(need)}, "
                          f"{_size(available)} are available")


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.0f} MB"


class Zeros:
    """All zeros."""

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        placeholder = loading_placeholder(shape, dtype)
        return placeholder if placeholder is not None else np.zeros(shape, dtype=dtype)


class Ones:
    """All ones."""

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        placeholder = loading_placeholder(shape, dtype)
        return placeholder if placeholder is not None else np.ones(shape, dtype=dtype)


class Constant:
    """Every entry equal to ``value``."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        placeholder = loading_placeholder(shape, dtype)
        return placeholder if placeholder is not None else np.full(shape, self.value, dtype=dtype)


class Gaussian:
    """Normal distribution with the given ``mean`` and ``stddev`` (at least 0), independent of the
    shape (Keras ``RandomNormal``)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.01) -> None:
        if not stddev >= 0:
            raise ValueError(f"stddev must be at least 0, got {stddev}")
        self.mean = float(mean)
        self.stddev = float(stddev)

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        placeholder = loading_placeholder(shape, dtype)
        if placeholder is not None:
            return placeholder
        require_memory(shape, dtype)
        return rng.normal(self.mean, self.stddev, size=shape).astype(dtype, copy=False)


class VarianceScaling:
    """Zero-mean values with variance ``scale / fan`` (``fan`` by ``mode``), drawn from a normal
    distribution or from the uniform distribution on ``[-sqrt(3 var), sqrt(3 var)]``.

    The base of ``lecun``, ``xavier`` and ``he``; not registered itself.
    """

    scale: float = 1.0
    mode: str = "fan_in"

    def __init__(self, distribution: Literal["normal", "uniform"] = "normal") -> None:
        if distribution not in ("normal", "uniform"):
            raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")
        self.distribution = distribution

    def variance(self, shape: tuple[int, ...]) -> float:
        fan_in, fan_out = fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        return self.scale / max(1.0, fan)

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        placeholder = loading_placeholder(shape, dtype)
        if placeholder is not None:
            return placeholder
        variance = self.variance(shape)
        require_memory(shape, dtype)
        if self.distribution == "normal":
            values = rng.normal(0.0, math.sqrt(variance), size=shape)
        else:
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, size=shape)
        return values.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(distribution={self.distribution!r})"


class LeCun(VarianceScaling):
    """LeCun initialization: variance ``1 / fan_in``. ``distribution``: ``"normal"`` (default) or
    ``"uniform"`` (limit ``sqrt(3 / fan_in)``)."""

    scale = 1.0
    mode = "fan_in"


class Xavier(VarianceScaling):
    """Xavier/Glorot initialization: variance ``2 / (fan_in + fan_out)``. ``distribution``:
    ``"uniform"`` (default, Keras's ``glorot_uniform``, limit ``sqrt(6 / (fan_in + fan_out))``) or
    ``"normal"``."""

    scale = 1.0
    mode = "fan_avg"

    def __init__(self, distribution: Literal["normal", "uniform"] = "uniform") -> None:
        super().__init__(distribution)


class He(VarianceScaling):
    """He initialization (for ReLU networks): variance ``2 / fan_in``. ``distribution``:
    ``"normal"`` (default) or ``"uniform"`` (limit ``sqrt(6 / fan_in)``)."""

    scale = 2.0
    mode = "fan_in"


class Dirac:
    """Identity (Dirac delta) initialization, as ``torch.nn.init.dirac_`` applied to the first
    ``min(in, out)`` output channels (airbench's convolutions): a convolution weight
    ``(kh, kw, in, out)`` whose output channel ``i < min(in, out)`` is ``gain`` at the kernel's
    centre tap ``(kh // 2, kw // 2)`` on input channel ``i`` and zero elsewhere, so those outputs
    start as a copy of the input (scaled by ``gain``); a dense weight ``(in, out)``: the first
    ``min(in, out)`` columns of ``gain * identity``. The remaining output channels, and any
    shape of fewer than 2 axes (biases), are drawn from ``others``, a registered initializer
    name or table (default ``"xavier"``; ``"zeros"`` for a pure identity). ``gain``: any finite
    number.
    """

    def __init__(self, gain: float = 1.0, others: str | dict = "xavier") -> None:
        if not math.isfinite(gain):
            raise ValueError(f"gain must be a finite number, got {gain}")
        self.gain = float(gain)
        self.others: Any = create_from_spec("initializer", others, "others")

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray:
        placeholder = loading_placeholder(shape, dtype)
        if placeholder is not None:
            return placeholder
        values = np.array(self.others(shape, rng, dtype), dtype=dtype)
        if len(shape) < 2:
            return values
        m = min(shape[-2], shape[-1])
        values[..., :m] = 0
        centre = tuple(d // 2 for d in shape[:-2])
        diagonal = np.arange(m)
        values[(*centre, diagonal, diagonal)] = self.gain
        return values

    def __repr__(self) -> str:
        return f"Dirac(gain={self.gain}, others={self.others!r})"


#: registered name -> class
INITIALIZERS: dict[str, type] = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "gaussian": Gaussian,
    "lecun": LeCun,
    "xavier": Xavier,
    "he": He,
    "dirac": Dirac,
}
