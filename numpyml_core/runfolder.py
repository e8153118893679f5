"""Claiming a run folder: one run (or resume) writes into a folder at a time.

A new run claims its folder atomically: ``os.mkdir`` creates it exclusively (an existing empty folder
is accepted too), and a lock file (:data:`LOCK_NAME`) in it is held with ``fcntl.flock`` for the
run's whole life. A second run with the same ``--output``, or a ``resume`` of a folder whose run is
still going, finds the lock held and is refused (exit status 2) before it writes anything. Default
folders (``runs/<name>-<time>``) are created with ``os.mkdir`` too, with a suffix ``-2``, ``-3``, ...
when another run took the name in the same second, so two runs never share one.

The kernel releases the lock when its process ends, however it ends (even SIGKILL), so a lock file
left behind by a killed run never blocks its resume. A run that ends normally removes the lock file.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from .errors import UserError

#: The lock file in a run folder, held while a run or resume writes there.
LOCK_NAME = ".numpyml.lock"

#: Names in a run folder that numpyml itself writes: a callback may not write a file of its own there.
RESERVED_NAMES = ("config.toml", "model.safetensors", "summary.json", "checkpoints", "report.html", LOCK_NAME)


def check_plain_file_name(value: str, what: str) -> None:
    """Raise ``ValueError`` (naming ``what``) unless ``value`` is a plain file name that a callback may
    write in a run folder: not empty, no folder part (``/``, ``\\``, ``.``, ``..``), no NUL, and not one
    of the run's own files (:data:`RESERVED_NAMES`, compared without case)."""
    if not value or "/" in value or "\\" in value or "\0" in value or value in (".", ".."):
        raise ValueError(f"{what} must be a plain file name inside the run folder (no '/', '\\', '..' or NUL "
                         f"character), got {value!r}")
    if value.casefold() in {name.casefold() for name in RESERVED_NAMES}:
        raise ValueError(f"{what} {value!r} is the name of one of the run folder's own files "
                         f"({', '.join(RESERVED_NAMES)}); choose another name, such as 'metrics2.csv'")


class RunFolder:
    """A run folder this process holds the lock of. :meth:`release` when the run ends; use it as a
    context manager to release it on any exit, and to remove the folder again (and the parents created
    for it) when the run failed before writing anything into it."""

    def __init__(self, path: Path, fd: int, created: list[Path]) -> None:
        self.path = path
        self._fd: int | None = fd
        self._created = created  # folders this claim made, innermost first

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def is_untouched(self) -> bool:
        """True when the folder holds nothing but the lock file."""
        try:
            return all(entry.name == LOCK_NAME for entry in self.path.iterdir())
        except OSError:
            return False

    def release(self, discard: bool = False) -> None:
        """Remove the lock file and release the lock. With ``discard`` (the run wrote nothing), also
        remove the folders this claim created, if they are still empty."""
        if self._fd is None:
            return
        try:
            os.unlink(self.lock_path)  # while still holding the lock: see _lock
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if discard:
            for folder in self._created:
                try:
                    folder.rmdir()
                except OSError:
                    break

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release(discard=exc_type is not None and self.is_untouched())


def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        pid = ""
    return f" (process {pid})" if pid.isdigit() else ""


def _lock(path: Path, what: str) -> int:
    """Hold ``path/LOCK_NAME`` with ``flock``; a :class:`UserError` when another process holds it.

    A holder removes the lock file before releasing it, so after taking the lock we check that the
    name still points to the file we locked (else another process may hold a newer one) and retry."""
    lock = path / LOCK_NAME
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise UserError(f"{what} {path}: cannot create the lock file {lock} ({exc.strerror}).") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{what} {path}: the folder is in use by another numpyml run or resume{_holder(lock)}; two runs "
                "never share a run folder. Wait for it to end (or stop it), or choose another folder."
            ) from None
        except OSError as exc:
            os.close(fd)
            raise UserError(f"{what} {path}: cannot lock {lock} ({exc.strerror}).") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
    raise UserError(f"{what} {path}: cannot take the lock {lock}: it keeps being replaced.")


def _missing_parents(path: Path) -> list[Path]:
    missing = []
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    return missing


def claim_new(path: str | os.PathLike, what: str = "--output") -> RunFolder:
    """Claim ``path`` for a new run: create it (or take an existing empty folder) and hold its lock.

    A :class:`UserError` (exit status 2, naming the folder) when it is a file, is not empty, is in use
    by another run, or cannot be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path}: exists and is not a folder; choose another path.")
    created = []
    missing = _missing_parents(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path)
        created = [path, *missing]
    except FileExistsError:
        if not path.is_dir():
            raise UserError(f"{what} {path}: exists and is not a folder; choose another path.") from None
    except OSError as exc:
        probe = path.parent
        while not probe.exists():
            probe = probe.parent
        reason = f"{probe} is not writable" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        raise UserError(f"{what} {path}: cannot create the run folder: {reason}.") from None
    fd = _lock(path, what)
    folder = RunFolder(path, fd, created)
    if not folder.is_untouched():
        folder.release()
        raise UserError(
            f"{what} {path}: the folder exists and is not empty; numpyml never overwrites a run. "
            "Choose a new folder or remove this one (or continue it with 'numpyml resume')."
        )
    return folder


def claim_default(root: str | os.PathLike, name: str) -> RunFolder:
    """Claim a new folder ``root/<name>-<time>`` (``-2``, ``-3``, ... when taken), created exclusively."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{root}: cannot create the folder for runs ({exc.strerror or exc}); "
                        "pass --output DIR.") from None
    for suffix in range(1, 10_000):
        path = root / (f"{name}-{stamp}" if suffix == 1 else f"{name}-{stamp}-{suffix}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"{path}: cannot create the run folder ({exc.strerror or exc}); pass --output DIR.") from None
        return RunFolder(path, _lock(path, "run folder"), [path])
    raise UserError(f"{root}: too many runs named '{name}' started in this second; pass --output DIR.")


def lock_existing(path: str | os.PathLike, what: str = "run folder") -> RunFolder:
    """Hold the lock of an existing run folder, to resume it."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: not a run folder (no such folder).")
    return RunFolder(path, _lock(path, what), [])


def _data_rows(path: Path) -> int:
    """Rows after the header of a CSV file (0 if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            lines = sum(1 for line in handle if line.strip())
    except OSError:
        return 0
    return max(lines - 1, 0)


def resume_point(path: Path, metrics_files: list[str]) -> Path | None:
    """What a resume of the run folder ``path`` continues from: its ``checkpoints/last.safetensors``, or
    ``None`` when nothing was trained yet (no checkpoint, no metrics rows, no model, no summary), so the
    run may start from the beginning.

    Refuses (:class:`UserError`, before anything is written) when starting over would destroy results:
    ``last.safetensors`` is missing but other checkpoints, metrics rows or a model exist; or when one of
    the files the run writes is a folder (the write would fail half-way through the resume)."""
    checkpoints = path / "checkpoints"
    last = checkpoints / "last.safetensors"
    for target in [path / "config.toml", path / "model.safetensors", path / "summary.json",
                   *(path / name for name in metrics_files), last, checkpoints / "best.safetensors"]:
        if target.exists() and not target.is_file():
            raise UserError(
                f"{target}: is a folder (or another non-file), but resuming the run in {path} writes a file there. "
                "Nothing was changed: move it away, then resume again."
            )
    if checkpoints.exists() and not checkpoints.is_dir():
        raise UserError(f"{checkpoints}: is not a folder, but the run in {path} keeps its checkpoints there. "
                        "Nothing was changed: move it away, then resume again.")
    if last.is_file():
        return last
    found = []
    if checkpoints.is_dir():
        found += [f"checkpoints/{p.name}" for p in sorted(checkpoints.iterdir()) if not p.name.startswith(".")]
    for name in metrics_files:
        rows = _data_rows(path / name)
        if rows:
            found.append(f"{name} ({rows} epoch{'s' if rows != 1 else ''})")
    found += [name for name in ("model.safetensors", "summary.json") if (path / name).exists()]
    if not found:
        return None
    best = checkpoints / "best.safetensors"
    advice = (f"To continue from the best checkpoint, copy it: cp {best} {last}, then resume again. "
              if best.is_file() else "")
    raise UserError(
        f"{path}: cannot resume: {last} is missing, but the folder holds {', '.join(found)}; starting the run "
        f"over would overwrite them, so nothing was changed. {advice}To start over in a new folder: "
        f"numpyml run {path / 'config.toml'} --output NEW_FOLDER."
    )
