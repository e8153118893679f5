"""Atomic file writing: every file numpyml writes appears complete or not at all."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_temporary(path: Path) -> tuple[int, Path]:
    """Create a new, empty temporary file beside ``path`` exclusively; its mode is 0666 less the umask
    (``tempfile.mkstemp`` makes 0600, which the rename would keep)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot find a free temporary name beside {path}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, then rename: a crash leaves the old
    file or the new one. A failure leaves no temporary file and raises ``OSError`` naming ``path``."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temporary(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename != str(path):
            # OSError(errno, ...) picks the matching subclass (FileNotFoundError, IsADirectoryError, ...)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
