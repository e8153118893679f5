"""The run folder: the one place that knows its files' names, reads and writes them, and claims it.

A run folder holds ``config.toml`` (the resolved experiment), ``metrics.csv`` (one row per epoch),
``summary.json`` (final figures), ``model.safetensors`` (weights and architecture) and
``checkpoints/`` (``last.safetensors``, ``best.safetensors``). :class:`RunFolder` spells those names;
every other module asks it for the paths, or lets it read and write the files (each write atomic).

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

import csv
import fcntl
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

from .errors import UserError

#: The lock file in a run folder, held while a run or resume writes there.
LOCK_NAME = ".numpyml.lock"


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
    """The files of one run folder, and (when it was claimed) the lock on it.

    ``RunFolder(path)`` is a view of any folder, to read a finished run or find its files; the
    functions :func:`claim_new`, :func:`claim_default` and :func:`lock_existing` return one that
    holds the folder's lock. :meth:`release` it when the run ends; as a context manager it is
    released on any exit, and the folder removed again (with the parents created for it) when the
    run failed before writing anything into it.
    """

    CONFIG = "config.toml"
    METRICS = "metrics.csv"
    SUMMARY = "summary.json"
    MODEL = "model.safetensors"
    CHECKPOINTS = "checkpoints"
    REPORT = "report.html"
    LOCK = LOCK_NAME

    def __init__(self, path: str | os.PathLike, fd: int | None = None, created: list[Path] | None = None) -> None:
        self.path = Path(path)
        self._fd: int | None = fd
        self._created = created or []  # folders this claim made, innermost first

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- where the files are -------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.path / self.LOCK

    @property
    def config_path(self) -> Path:
        """``config.toml``: the resolved experiment, with the plugin versions used."""
        return self.path / self.CONFIG

    @property
    def summary_path(self) -> Path:
        """``summary.json``: the final figures, written when training ends."""
        return self.path / self.SUMMARY

    @property
    def model_path(self) -> Path:
        """``model.safetensors``: the trained weights, with the architecture in the header."""
        return self.path / self.MODEL

    @property
    def report_path(self) -> Path:
        """``report.html``: where ``numpyml report`` writes a single run's report."""
        return self.path / self.REPORT

    @property
    def checkpoints_dir(self) -> Path:
        """``checkpoints/``: the ``last`` and ``best`` checkpoints."""
        return self.path / self.CHECKPOINTS

    def checkpoint_path(self, which: Literal["last", "best"] = "last") -> Path:
        """``checkpoints/last.safetensors`` (written every epoch and on Ctrl-C, what a resume continues
        from) or ``checkpoints/best.safetensors`` (the best epoch so far)."""
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
        """True when a run was started here (``config.toml``) and left results: ``metrics.csv``,
        ``summary.json`` or ``model.safetensors`` (what ``numpyml runs`` lists)."""
        return self.is_run() and any(path.is_file() for path in (self.metrics_path(), self.summary_path,
                                                                  self.model_path))

    # -- reading and writing them ----------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """``config.toml`` parsed (a :class:`~numpyml_core.errors.ConfigError` naming it when it cannot be)."""
        from .config import read_toml

        return read_toml(self.config_path)

    def write_config(self, text: str) -> None:
        """Write ``config.toml`` (TOML text, see :func:`numpyml_core.api.resolved_config`), atomically."""
        from .io import atomic_write_text

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
        from .io import atomic_write_text

        atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")

    def read_metrics(self, filename: str = METRICS) -> dict[str, list[float]]:
        """The metrics file as columns: each header name -> its values, one per epoch, as floats (``nan``
        where a row has no number); ``{}`` when the file does not exist (no epoch has ended yet)."""
        path = self.metrics_path(filename)
        if not path.is_file():
            return {}
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise UserError(f"{path}: cannot read the run's metrics ({exc}).") from None
        columns: dict[str, list[float]] = {}
        for row in rows:
            for key in row:
                if key is not None:  # None: the fields of a row longer than the header
                    columns.setdefault(key, [])
        for row in rows:
            for key, values in columns.items():
                values.append(_number(row.get(key)))
        return columns

    def write_metrics(self, text: str, filename: str = METRICS) -> None:
        """Write the metrics file (CSV text), atomically."""
        from .io import atomic_write_text

        atomic_write_text(self.metrics_path(filename), text)

    def write_model(self, model: Any, architecture: dict[str, Any]) -> None:
        """Write ``model.safetensors``: ``model``'s weights, ``architecture`` as JSON metadata."""
        from .serialization import save_model

        save_model(self.model_path, model, architecture)

    def write_checkpoint(self, run: Any, which: Literal["last", "best"] = "last") -> Path:
        """Write ``run``'s whole state to a checkpoint (:mod:`numpyml_core.checkpoint`), atomically;
        return its path. Refuses non-finite parameters (the previous checkpoint stays)."""
        from .checkpoint import save_checkpoint

        path = self.checkpoint_path(which)
        save_checkpoint(path, run)
        return path

    def read_checkpoint(self, which: Literal["last", "best"] = "last") -> tuple[dict[str, Any], dict[str, Any]]:
        """(arrays, state) of a checkpoint, validated (:func:`numpyml_core.checkpoint.read_checkpoint`)."""
        from .checkpoint import read_checkpoint

        return read_checkpoint(self.checkpoint_path(which))

    # -- the claim ---------------------------------------------------------------------------------
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


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


#: Names in a run folder that numpyml itself writes: a callback may not write a file of its own there.
RESERVED_NAMES = (RunFolder.CONFIG, RunFolder.MODEL, RunFolder.SUMMARY, RunFolder.CHECKPOINTS, RunFolder.REPORT,
                  LOCK_NAME)


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


def resume_point(folder: RunFolder, metrics_files: list[str]) -> Path | None:
    """What a resume of ``folder`` continues from: its ``checkpoints/last.safetensors``, or ``None``
    when nothing was trained yet (no checkpoint, no metrics rows, no model, no summary), so the run
    may start from the beginning.

    Refuses (:class:`UserError`, before anything is written) when starting over would destroy results:
    ``last.safetensors`` is missing but other checkpoints, metrics rows or a model exist; or when one of
    the files the run writes is a folder (the write would fail half-way through the resume)."""
    path = folder.path
    checkpoints = folder.checkpoints_dir
    last, best = folder.checkpoint_path("last"), folder.checkpoint_path("best")
    for target in [folder.config_path, folder.model_path, folder.summary_path,
                   *(folder.metrics_path(name) for name in metrics_files), last, best]:
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
        found += [f"{checkpoints.name}/{p.name}" for p in sorted(checkpoints.iterdir()) if not p.name.startswith(".")]
    for name in metrics_files:
        rows = _data_rows(folder.metrics_path(name))
        if rows:
            found.append(f"{name} ({rows} epoch{'s' if rows != 1 else ''})")
    found += [target.name for target in (folder.model_path, folder.summary_path) if target.exists()]
    if not found:
        return None
    advice = (f"To continue from the best checkpoint, copy it: cp {best} {last}, then resume again. "
              if best.is_file() else "")
    raise UserError(
        f"{path}: cannot resume: {last} is missing, but the folder holds {', '.join(found)}; starting the run "
        f"over would overwrite them, so nothing was changed. {advice}To start over in a new folder: "
        f"numpyml run {folder.config_path} --output NEW_FOLDER."
    )
