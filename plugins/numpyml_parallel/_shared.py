"""Named NumPy arrays packed into one POSIX shared-memory segment.

The creating process (the strategy in the training process) owns a segment: it creates it with
:meth:`SharedArrays.create` and removes it with :meth:`SharedArrays.unlink`. Worker processes
attach to it by :attr:`SharedArrays.handle` (the segment name and the layout, a small picklable
tuple) and only ever :meth:`close` it. Every segment name starts with :data:`PREFIX`, so a test (or
a person) can check ``/dev/shm`` for leftovers.

A segment outlives a run only when the whole process group is killed with SIGKILL (``timeout -s
KILL``, Slurm, the OOM killer): nothing of the run is left to remove it, and Python's resource
tracker dies with the group. So the run's token names its owner, ``<pid>-<start time>-<random>``
(process id and start time in clock ticks since boot, from ``/proc/<pid>/stat``, both in hex), and
every new run calls :func:`reclaim_dead_segments`, which removes the segments whose owner is no
longer running (a process id reused since then has another start time). Unlinking every segment
as soon as the workers have attached would not cover the batch segments, which are created (and
grown) during training and attached by the workers later, at their next command; a kill in
between would still leak them.
"""

from __future__ import annotations

import multiprocessing.synchronize
import os
import secrets
from multiprocessing import shared_memory
from typing import Any, Mapping

import numpy as np

#: every segment this plugin creates is named ``numpyml_<token>_<role>`` (see :func:`new_token`)
PREFIX = "numpyml_"
_SHM = "/dev/shm"
_ALIGN = 64

Layout = dict[str, tuple[int, tuple[int, ...], str]]  # name -> (offset, shape, dtype string)
Handle = tuple[str, Layout]


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, field 22 of ``/proc/<pid>/stat``);
    ``None`` if it does not exist, 0 where there is no ``/proc`` to read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return None if os.path.isdir("/proc") else 0
    except (OSError, IndexError):
        return 0
    try:
        return int(fields[19])  # fields after the command name start at field 3 (the state)
    except (IndexError, ValueError):
        return 0


def new_token() -> str:
    """The tag shared by the segments of one run: ``<pid>-<start time>-<random>``, the owner (this
    process) and its start time in hex, so that :func:`reclaim_dead_segments` can tell whether the
    owner still runs. Short: macOS allows 31-character names."""
    pid = os.getpid()
    return f"{pid:x}-{_start_time(pid) or 0:x}-{secrets.token_hex(2)}"


def _owner(name: str) -> tuple[int, int] | None:
    """(pid, start time) of the owner named in a segment name, ``None`` for another format."""
    token = name[len(PREFIX):].split("_", 1)[0]
    parts = token.split("-")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        return None


def reclaim_dead_segments() -> list[str]:
    """Remove the segments (``/dev/shm``, Linux) whose owner process no longer runs; return their
    names. A run killed with SIGKILL together with its workers leaves its segments behind; each
    new ``sync``/``async`` run calls this first. Segments of live processes, of other users (not
    ours to remove) and in other name formats are left alone."""
    removed = []
    for name in segment_names():
        owner = _owner(name.removeprefix(_SEM))
        if owner is None:
            continue
        pid, start = owner
        now = _start_time(pid)
        if now is not None and (start == 0 or now == 0 or now == start):
            continue  # the owner (or, where start times are unknown, some process with its pid) runs
        try:
            os.unlink(os.path.join(_SHM, name))
        except OSError:  # gone already, or another user's
            continue
        removed.append(name)
    return removed


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
    """Names of this plugin's segments and semaphores (``sem.numpyml_...``) that exist now (Linux:
    read from /dev/shm), for checks."""
    try:
        names = os.listdir(_SHM)
    except OSError:
        return []
    start = PREFIX + (f"{token}_" if token else "")
    return sorted(name for name in names if name.startswith((start, _SEM + start)))


_SEM = "sem."  # glibc keeps the named semaphore "/x" in /dev/shm/sem.x


class Semaphore(multiprocessing.synchronize.Semaphore):
    """A POSIX named semaphore for the ``spawn`` context, named ``/numpyml_<token>_<role>`` like the
    segments of a run so that :func:`reclaim_dead_segments` removes it after a SIGKILL.

    ``multiprocessing``'s own semaphores are named ``/mp-<random>`` (no owner to check) and are
    unlinked only by a finalizer or the resource tracker, both gone after a SIGKILL of the process
    group. This one is unlinked by its creator (:meth:`unlink`, idempotent); a worker receives it
    pickled, as any ``multiprocessing`` semaphore, and opens it by name.
    """

    def __init__(self, token: str, role: str, value: int = 0):
        import _multiprocessing

        self.name = f"/{PREFIX}{token}_{role}"
        self._owner_pid = os.getpid()
        self._semlock = _multiprocessing.SemLock(multiprocessing.synchronize.SEMAPHORE, value,
                                                 multiprocessing.synchronize.SEM_VALUE_MAX, self.name, False)
        self._is_fork_ctx = False
        self._make_methods()

    def unlink(self) -> None:
        """Remove the name (processes that opened it keep using it); only in the creating process."""
        import _multiprocessing

        if os.getpid() != getattr(self, "_owner_pid", None):
            return
        self._owner_pid = None
        try:
            _multiprocessing.sem_unlink(self.name)
        except (FileNotFoundError, OSError):
            pass

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(state)
        self.name = state[3]
        self._owner_pid = None  # a copy in a worker: not the owner
