"""Finding and fetching dataset files: where data is looked for, downloaded to and how.

* :func:`cache_dir`: where downloads go.
* :func:`search_directories`, :func:`find_file`, :func:`describe_directories`: look a data file
  up in the usual places, in order, and say where it looked when it is missing.
* :func:`read_maybe_gzip`: a file's bytes, decompressed when it is gzip (detected by content).
* :func:`download`: fetch a URL into a file, checking size and checksum, atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from numpyml_core import UserError, __version__
from numpyml_core.plugin_api import data_dir_from_env


def cache_dir() -> Path:
    """Where downloads go: ``NUMPYML_CACHE_DIR``, else ``$XDG_CACHE_HOME/numpyml``, else
    ``~/.cache/numpyml`` (``%LOCALAPPDATA%\\numpyml\\Cache`` on Windows)."""
    value = os.environ.get("NUMPYML_CACHE_DIR", "").strip()
    if value:
        return Path(value).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "numpyml" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "numpyml"


# --------------------------------------------------------------------------------------------
# finding data files
# --------------------------------------------------------------------------------------------
def search_directories(
    folders: Sequence[str],
    data_dir: str | os.PathLike | None = None,
    *,
    system_dirs: Iterable[str | os.PathLike] = (),
    cache: bool = True,
) -> list[Path]:
    """The directories a dataset looks in, in order.

    1. ``<data_dir>/<folder>`` for every name in ``folders``, where ``data_dir`` is the argument
       (the CLI's ``--data-dir``) or, when that is ``None``, ``NUMPYML_DATA_DIR``;
    2. ``system_dirs`` (for example a Debian package's ``/usr/share/datasets/...``);
    3. ``cache_dir()/<folders[0]>`` when ``cache`` is true (where :func:`download` puts files).

    Directories that do not exist are kept in the list, so error messages can name them.
    """
    if not folders:
        raise ValueError("search_directories needs at least one folder name")
    root = data_dir if data_dir is not None else data_dir_from_env()
    dirs: list[Path] = []
    if root is not None:
        base = Path(root).expanduser()
        dirs.extend(base / folder for folder in folders)
    dirs.extend(Path(d) for d in system_dirs)
    if cache:
        dirs.append(cache_dir() / folders[0])
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_file(names: Sequence[str], directories: Sequence[str | os.PathLike]) -> Path | None:
    """The first existing regular file ``<directory>/<name>``: directories in order, and within a
    directory the names in order (so put the preferred name, such as the ``.gz`` one, first)."""
    for directory in directories:
        for name in names:
            candidate = Path(directory) / name
            if candidate.is_file():
                return candidate
    return None


def describe_directories(directories: Sequence[str | os.PathLike]) -> str:
    """``"/a (does not exist), /b"``: the directories tried, for error messages."""
    parts = []
    for d in directories:
        d = Path(d)
        parts.append(f"{d}" if d.is_dir() else f"{d} (does not exist)")
    return ", ".join(parts)


#: The most :func:`read_maybe_gzip` returns by default (1 GiB), so a small gzip "bomb" cannot
#: exhaust memory; pass ``max_bytes`` to read more on purpose.
MAX_READ_BYTES = 1 << 30


def read_maybe_gzip(path: str | os.PathLike, max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The bytes of ``path``, gunzipped when the file starts with the gzip magic bytes ``1f 8b``
    (whatever its name). Unreadable files, corrupt or truncated gzip data and content larger than
    ``max_bytes`` (default :data:`MAX_READ_BYTES`; decompression is streamed and stops one byte
    past the limit, so memory stays bounded) raise :class:`~numpyml_core.UserError` naming the file.
    Formats with a size header (IDX) are better read header first, as ``numpyml_datasets.idx`` does."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            compressed = handle.read(2) == b"\x1f\x8b"
            handle.seek(0)
            if not compressed:
                size = os.fstat(handle.fileno()).st_size
                if size > max_bytes:
                    raise UserError(f"{path} holds {size} bytes, more than the limit of {max_bytes} bytes.")
                return handle.read()
            try:
                chunks, total = [], 0
                with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
                    while total <= max_bytes:  # in pieces: memory follows the data, not the limit
                        chunk = stream.read(min(1 << 20, max_bytes + 1 - total))
                        if not chunk:
                            break
                        chunks.append(chunk)
                        total += len(chunk)
                data = b"".join(chunks)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise UserError(
                    f"{path} is a corrupt or truncated gzip file ({exc}). Replace it with a fresh copy "
                    "(delete it if it was downloaded into the cache, and it will be downloaded again)."
                ) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if total > max_bytes:
        raise UserError(
            f"{path} inflates to more than the limit of {max_bytes} bytes (a gzip bomb, or not the file "
            "expected). Replace it with a fresh copy."
        )
    return data


# --------------------------------------------------------------------------------------------
# downloading
# --------------------------------------------------------------------------------------------
def _default_opener(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": f"numpyml/{__version__}"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - URLs come from dataset authors


def download(
    url: str,
    destination: str | os.PathLike,
    md5: str | None = None,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
    opener: Callable[[str, float], Any] | None = None,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``destination`` and return its path.

    The data is streamed into a temporary file in the destination's folder while its md5 (and
    sha256, if given) is computed; the file is renamed to ``destination`` only when the size
    matches the server's ``Content-Length`` and the checksums match. A mismatching, interrupted or
    failed download deletes the temporary file and raises :class:`~numpyml_core.UserError`, so a
    partial file never appears under the final name.

    ``opener(url, timeout)`` returns a response usable in a ``with`` block, with ``read(n)`` and,
    optionally, ``headers``; the default is :func:`urllib.request.urlopen`, which also handles ``file://``.
    """
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        # created exclusively with mode 0666 less the umask, as the finished file should be (not mkstemp's 0600)
        tmp = destination.parent / f".{destination.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise UserError(
            f"cannot download {url}: cannot write to {destination.parent} ({exc.strerror or exc}). "
            "Set NUMPYML_CACHE_DIR to a writable folder."
        ) from None
    md5_hash = hashlib.md5(usedforsecurity=False)
    sha_hash = hashlib.sha256() if sha256 else None
    received = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            try:
                response = (opener or _default_opener)(url, timeout)
                with response:
                    length_header = getattr(response, "headers", {}).get("Content-Length")
                    expected_size = int(length_header) if length_header and length_header.isdigit() else None
                    while True:
                        chunk = response.read(chunk_size)
                        if not chunk:
                            break
                        handle.write(chunk)
                        md5_hash.update(chunk)
                        if sha_hash is not None:
                            sha_hash.update(chunk)
                        received += len(chunk)
            except urllib.error.HTTPError as exc:
                raise UserError(f"cannot download {url}: the server answered HTTP {exc.code} {exc.reason}.") from None
            except (urllib.error.URLError, HTTPException, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise UserError(
                    f"cannot download {url}: {type(exc).__name__}: {reason} (after {received} bytes). "
                    "Check the network connection, or place the file there yourself."
                ) from None
            if expected_size is not None and received != expected_size:
                raise UserError(
                    f"download of {url} was interrupted: received {received} of {expected_size} bytes. "
                    "Nothing was saved; try again."
                )
            for name, expected, digest in (
                ("md5", md5, md5_hash),
                ("sha256", sha256, sha_hash),
            ):
                if expected and digest is not None and digest.hexdigest() != expected.lower():
                    raise UserError(
                        f"download of {url} failed its checksum: {name} is {digest.hexdigest()}, expected "
                        f"{expected.lower()} ({received} bytes received). The download was deleted; try "
                        "again, or fetch the file yourself and check it."
                    )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, destination)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return destination
