"""The run folder: the one place that knows its files' names, reads and writes them, and claims it (created
exclusively, a lock file in it held with ``flock``: docs/reliability.md)."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

from .errors import RunFolderInUse, UserError
from .io import atomic_write_text

def validate_file_name(value: str, what: str) -> None:
    """Raise ``ValueError`` (naming ``what``) unless ``value`` is a plain file name a callback may write in a
    run folder: not empty, no ``/``, ``\\``, ``.``, ``..`` or NUL, not one of :data:`RESERVED_NAMES` (any case)."""
    if not value or "/" in value or "\\" in value or "\0" in value or value in (".", ".."):
        raise ValueError(f"{what} must be a plain file name inside the run folder (no '/', '\\', '..' or NUL "
                         f"character), got {value!r}")
    if value.casefold() in {name.casefold() for name in RESERVED_NAMES}:
        raise ValueError(f"{what} {value!r} is the name of one of the run folder's own files "
                         f"({', '.join(RESERVED_NAMES)}); choose another name, such as 'metrics2.csv'")


class RunFolder:
    """The files of one run folder (``config_path``, ``summary_path``, ``model_path``, ``report_path``,
    ``checkpoints_dir``, ``lock_path``) and, when claimed (:func:`claim_new`, :func:`claim_default`,
    :func:`lock_existing`), its lock: :meth:`release` it, or use the folder as a context manager (which also
    removes the folder again when the run failed before writing anything)."""

    CONFIG = "config.toml"
    METRICS = "metrics.csv"
    SUMMARY = "summary.json"
    MODEL = "model.safetensors"
    CHECKPOINTS = "checkpoints"
    REPORT = "report.html"
    LOCK = ".numpyml.lock"  # held while a run or resume writes here

    def __init__(self, path: str | os.PathLike, fd: int | None = None, created: list[Path] | None = None) -> None:
        self.path = Path(path)
        self.config_path = self.path / self.CONFIG
        self.summary_path = self.path / self.SUMMARY
        self.model_path = self.path / self.MODEL
        self.report_path = self.path / self.REPORT
        self.checkpoints_dir = self.path / self.CHECKPOINTS
        self.lock_path = self.path / self.LOCK
        self._fd = fd
        self._created = created or []  # folders this claim made, innermost first

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def checkpoint_path(self, which: Literal["last", "best"] = "last") -> Path:
        """``checkpoints/last.safetensors`` (what a resume continues from) or ``checkpoints/best.safetensors``."""
        if which not in ("last", "best"):
            raise ValueError(f"which must be 'last' or 'best', got {which!r}")
        return self.checkpoints_dir / f"{which}.safetensors"

    def metrics_path(self, filename: str = METRICS) -> Path:
        """The metrics file, ``metrics.csv`` unless a ``metrics_csv`` callback names another."""
        return self.path / filename

    def is_run(self) -> bool:
        """True when the folder holds a ``config.toml``: a run was started there."""
        return self.config_path.is_file()

    def has_results(self) -> bool:
        """True when a run was started here and left ``metrics.csv``, ``summary.json`` or ``model.safetensors``."""
        return self.is_run() and any(p.is_file() for p in (self.metrics_path(), self.summary_path, self.model_path))

    def read_config(self) -> dict[str, Any]:
        """``config.toml`` parsed (a :class:`~numpyml_core.errors.ConfigError` naming it when it cannot be)."""
        from .config import read_toml

        return read_toml(self.config_path)

    def write_config(self, text: str) -> None:
        """Write ``config.toml`` (TOML text), atomically."""
        atomic_write_text(self.config_path, text)

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` (a :class:`UserError` naming it when it is missing or not a JSON object)."""
        try:
            summary = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{self.summary_path}: no such file; the run has not finished.") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.summary_path}: cannot read the run's summary ({exc}).") from None
        if not isinstance(summary, dict):
            raise UserError(f"{self.summary_path}: expected a JSON object of final figures.")
        return summary

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``, atomically."""
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")

    def read_metrics(self, filename: str = METRICS) -> dict[str, list[float]]:
        """The metrics file as columns (header name -> one float per epoch, ``nan`` where a row has no number);
        ``{}`` when the file does not exist (no epoch has ended yet)."""
        path = self.metrics_path(filename)
        if not path.is_file():
            return {}
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise UserError(f"{path}: cannot read the run's metrics ({exc}).") from None
        return {key: [_number(row.get(key)) for row in rows] for key in (reader.fieldnames if rows else ())}

    def write_metrics(self, text: str, filename: str = METRICS) -> None:
        """Write the metrics file (CSV text), atomically."""
        atomic_write_text(self.metrics_path(filename), text)

    def write_model(self, model: Any, architecture: dict[str, Any]) -> None:
        """Write ``model.safetensors``: ``model``'s weights, ``architecture`` as JSON metadata."""
        from .serialization import save_model

        save_model(self.model_path, model, architecture)

    def write_checkpoint(self, run: Any, which: Literal["last", "best"] = "last") -> Path:
        """Write ``run``'s whole state to a checkpoint, atomically (refusing non-finite parameters); return its path."""
        from .checkpoint import save_checkpoint

        save_checkpoint(self.checkpoint_path(which), run)
        return self.checkpoint_path(which)

    def read_checkpoint(self, which: Literal["last", "best"] = "last") -> tuple[dict[str, Any], dict[str, Any]]:
        """(arrays, state) of a checkpoint, validated (:func:`numpyml_core.checkpoint.read_checkpoint`)."""
        from .checkpoint import read_checkpoint

        return read_checkpoint(self.checkpoint_path(which))

    def is_untouched(self) -> bool:
        """True when the folder holds nothing but the lock file."""
        try:
            return all(entry.name == self.LOCK for entry in self.path.iterdir())
        except OSError:
            return False

    def release(self, discard: bool = False) -> None:
        """Remove the lock file and release the lock; with ``discard``, also remove the folders this claim
        created if they are still empty."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)  # while still holding the lock: see _lock
        os.close(self._fd)
        self._fd = None
        for folder in self._created if discard else ():
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release(discard=exc_type is not None and self.is_untouched())


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


#: Names in a run folder that numpyml itself writes: a callback may not write a file of its own there.
RESERVED_NAMES = (RunFolder.CONFIG, RunFolder.MODEL, RunFolder.SUMMARY, RunFolder.CHECKPOINTS, RunFolder.REPORT,
                  RunFolder.LOCK)


def _lock(path: Path, what: str) -> int:
    """Hold ``path/RunFolder.LOCK`` with ``flock``; a :class:`UserError` when another process holds it. A holder
    removes the lock file before releasing it, so once locked, check that the name is still our file."""
    lock = path / RunFolder.LOCK
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise UserError(f"{what} {path}: cannot create the lock file {lock} ({exc.strerror}).") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if not isinstance(exc, BlockingIOError):
                raise UserError(f"{what} {path}: cannot lock {lock} ({exc.strerror}).") from None
            try:
                pid = lock.read_text().strip()
            except OSError:
                pid = ""
            holder = f" (process {pid})" if pid.isdigit() else ""
            raise RunFolderInUse(f"{what} {path}: the folder is in use by another numpyml run or resume{holder}; "
                                 "two runs never share a run folder. Wait for it to end (or stop it), or choose "
                                 "another folder.") from None
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


def claim_new(path: str | os.PathLike, what: str = "--output") -> RunFolder:
    """Claim ``path`` for a new run: create it (or take an existing empty folder) and hold its lock; a
    :class:`UserError` when it is a file, is not empty, is in use or cannot be created."""
    path = Path(path)
    missing = list(itertools.takewhile(lambda parent: not parent.exists(), path.parents))  # innermost first
    created = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path)
        created = [path, *missing]
    except FileExistsError:
        if not path.is_dir():
            raise UserError(f"{what} {path}: exists and is not a folder; choose another path.") from None
    except OSError as exc:
        existing = next(parent for parent in path.parents if parent.exists())
        reason = f"{existing} is not writable" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        raise UserError(f"{what} {path}: cannot create the run folder: {reason}.") from None
    folder = RunFolder(path, _lock(path, what), created)
    if not folder.is_untouched():
        folder.release()
        raise UserError(f"{what} {path}: the folder exists and is not empty; numpyml never overwrites a run. "
                        "Choose a new folder or remove this one (or continue it with 'numpyml resume').")
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
            raise UserError(f"{path}: cannot create the run folder ({exc.strerror or exc}); "
                            "pass --output DIR.") from None
        return RunFolder(path, _lock(path, "run folder"), [path])
    raise UserError(f"{root}: too many runs named '{name}' started in this second; pass --output DIR.")


def lock_existing(path: str | os.PathLike, what: str = "run folder") -> RunFolder:
    """Hold the lock of an existing run folder, to resume it."""
    if not Path(path).is_dir():
        raise UserError(f"{path}: not a run folder (no such folder).")
    return RunFolder(path, _lock(Path(path), what), [])


def resume_point(folder: RunFolder, metrics_files: list[str]) -> Path | None:
    """What a resume of ``folder`` continues from: ``checkpoints/last.safetensors``, or ``None`` when nothing was
    trained yet. A :class:`UserError` when starting over would destroy results (no ``last`` but other
    checkpoints, metrics rows, a model or a summary), or when a file the run writes is a folder."""
    last, best = folder.checkpoint_path("last"), folder.checkpoint_path("best")
    metrics = [folder.metrics_path(name) for name in metrics_files]
    for target in [folder.config_path, folder.model_path, folder.summary_path, *metrics, last, best]:
        if target.exists() and not target.is_file():
            raise UserError(f"{target}: is a folder (or another non-file), but resuming the run in {folder.path} "
                            "writes a file there. Nothing was changed: move it away, then resume again.")
    checkpoints = folder.checkpoints_dir
    if checkpoints.exists() and not checkpoints.is_dir():
        raise UserError(f"{checkpoints}: is not a folder, but the run in {folder.path} keeps its checkpoints there. "
                        "Nothing was changed: move it away, then resume again.")
    if last.is_file():
        return last
    found = []
    if checkpoints.is_dir():
        found += [f"{checkpoints.name}/{p.name}" for p in sorted(checkpoints.iterdir()) if not p.name.startswith(".")]
    for path in metrics:
        try:
            with open(path, "rb") as handle:
                rows = max(sum(1 for line in handle if line.strip()) - 1, 0)  # rows after the header
        except OSError:
            rows = 0
        if rows:
            found.append(f"{path.name} ({rows} epoch{'s' if rows != 1 else ''})")
    found += [target.name for target in (folder.model_path, folder.summary_path) if target.exists()]
    if not found:
        return None
    advice = (f"To continue from the best checkpoint, copy it: cp {best} {last}, then resume again. "
              if best.is_file() else "")
    raise UserError(f"{folder.path}: cannot resume: {last} is missing, but the folder holds {', '.join(found)}; "
                    f"starting the run over would overwrite them, so nothing was changed. {advice}To start over in "
                    f"a new folder: numpyml run {folder.config_path} --output NEW_FOLDER.")
