"""Named NumPy arrays packed into one POSIX shared-memory segment.

The creating process (the strategy in the training process) owns a segment: it creates it with
:meth:`SharedArrays.create` and removes it with :meth:`SharedArrays.unlink`. Worker processes
attach to it by :attr:`SharedArrays.handle` (the segment name and the layout, a small picklable
tuple) and only ever :meth:`close` it. Every segment name starts with :data:`PREFIX`, so a test (or
a person) can check ``/dev/shm`` for leftovers.
"""

from __future__ import annotations

import secrets
from multiprocessing import shared_memory
from typing import Any, Mapping

import numpy as np

#: every segment this plugin creates is named ``numpyml_<8 hex digits>_<role>``
PREFIX = "numpyml_"
_ALIGN = 64

Layout = dict[str, tuple[int, tuple[int, ...], str]]  # name -> (offset, shape, dtype string)
Handle = tuple[str, Layout]


def new_token() -> str:
    """A random tag shared by the segments of one run (short: macOS allows 31-character names)."""
    return secrets.token_hex(4)


def _layout(specs: Mapping[str, tuple[tuple[int, ...], Any]]) -> tuple[Layout, int]:
    layout: Layout = {}
    offset = 0
    for name, (shape, dtype) in specs.items():
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        layout[name] = (offset, shape, dtype.str)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        offset += -(-size // _ALIGN) * _ALIGN
    return layout, max(offset, 1)


class SharedArrays:
    """A set of named arrays living in one shared-memory segment (see the module docstring)."""

    def __init__(self, shm: shared_memory.SharedMemory, layout: Layout, owner: bool):
        self._shm: shared_memory.SharedMemory | None = shm
        self.layout = layout
        self.owner = owner
        self.name = shm.name
        self.arrays: dict[str, np.ndarray] = {
            key: np.ndarray(shape, dtype=np.dtype(dtype), buffer=shm.buf, offset=offset)
            for key, (offset, shape, dtype) in layout.items()
        }

    @classmethod
    def create(cls, token: str, role: str, specs: Mapping[str, tuple[tuple[int, ...], Any]]) -> "SharedArrays":
        """A new zero-filled segment named ``numpyml_<token>_<role>`` holding ``specs``
        (name -> (shape, dtype))."""
        layout, size = _layout(specs)
        shm = shared_memory.SharedMemory(name=f"{PREFIX}{token}_{role}", create=True, size=size)
        return cls(shm, layout, owner=True)

    @classmethod
    def attach(cls, handle: Handle) -> "SharedArrays":
        name, layout = handle
        return cls(shared_memory.SharedMemory(name=name), layout, owner=False)

    @property
    def handle(self) -> Handle:
        return (self.name, self.layout)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def close(self) -> None:
        """Drop this process's mapping (the arrays must no longer be used)."""
        shm, self._shm = self._shm, None
        self.arrays = {}
        if shm is not None:
            try:
                shm.close()
            except BufferError:  # a view is still alive somewhere; the mapping goes with the process
                pass
            if self.owner:
                try:
                    shm.unlink()
                except FileNotFoundError:
                    pass

    unlink = close  # the owner's close also removes the name


def segment_names(token: str | None = None) -> list[str]:
    """Names of this plugin's segments that exist now (Linux: read from /dev/shm), for checks."""
    import os

    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return []
    start = PREFIX + (f"{token}_" if token else "")
    return sorted(name for name in names if name.startswith(start))
