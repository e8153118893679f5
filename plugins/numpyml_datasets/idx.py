"""Reading IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

An IDX file is a big-endian header followed by the raw data:

* 4 bytes of magic number: two zero bytes, a type byte (``0x08`` = unsigned byte) and the number
  of dimensions (``0x03`` for images ``(N, rows, cols)``, ``0x01`` for labels ``(N,)``);
* one big-endian uint32 per dimension;
* ``prod(dims)`` bytes of data, nothing after.

Files may be gzip-compressed (detected by content, not by name). :func:`read_idx` reads the header
first and then exactly the bytes it declares, straight into the array (streamed through the gzip
decoder), so memory is bounded by the declared size whatever the file holds: a header declaring
more than :data:`MAX_IDX_BYTES`, or more than a gzip file of that size can possibly inflate to, is
refused before anything is allocated, and data beyond the declared size is refused after reading
one byte of it (a small gzip "bomb" is never inflated). Sizes are computed with Python integers,
so dimensions whose product overflows 64 bits are refused too.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from numpyml_core import UserError

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

_WHAT = {IMAGES_MAGIC: "an IDX image file", LABELS_MAGIC: "an IDX label file"}

#: The largest data an IDX file may declare (1 GiB): twice the largest IDX data set known to us
#: (EMNIST "byclass", 698k images of 28x28, 547 MB), far above MNIST's 47 MB. A header declaring
#: more is refused before anything is allocated; pass ``max_bytes`` to :func:`read_idx` to read a
#: larger file on purpose.
MAX_IDX_BYTES = 1 << 30

#: deflate (gzip) inflates at most 1032:1 (zlib's documented limit); a gzip file declaring more
#: than this many times its own size is truncated, whatever it holds.
_MAX_GZIP_RATIO = 1032


def _check_magic(head: bytes, expected_magic: int, source: str | Path, total: int | None = None) -> int:
    """The number of dimensions, after checking the 4-byte magic number ``head``."""
    what = _WHAT.get(expected_magic, f"an IDX file with magic 0x{expected_magic:08x}")
    if len(head) < 4:
        size = len(head) if total is None else total
        raise UserError(
            f"{source} is not {what}: it holds only {size} bytes, too short for an IDX header "
            "(the file is truncated or empty). Replace it with a fresh copy."
        )
    magic = int.from_bytes(head[:4], "big")
    if magic != expected_magic:
        hint = ""
        if magic in _WHAT:
            hint = f" (it looks like {_WHAT[magic]}: are the image and label file names swapped?)"
        elif head[:1] == b"<" or head[:4].lower() in (b"<!do", b"<htm"):
            hint = " (it looks like an HTML page: a failed download?)"
        raise UserError(
            f"{source}: bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for {what}{hint}. "
            "Replace it with the official file."
        )
    return expected_magic & 0xFF


def _declared(dims_bytes: bytes, ndim: int, source: str | Path, max_bytes: int) -> tuple[tuple[int, ...], int]:
    """The dimensions and the data size (a Python int, so it cannot overflow) the header declares,
    refused when larger than ``max_bytes``."""
    dims = tuple(int.from_bytes(dims_bytes[4 * i:4 * i + 4], "big") for i in range(ndim))
    size = 1
    for d in dims:
        size *= d
    if size > max_bytes:
        raise UserError(
            f"{source}: its IDX header declares {_shape(dims)} = {size} bytes of data, more than the limit of "
            f"{max_bytes} bytes (numpyml_datasets.idx.MAX_IDX_BYTES); the header is corrupt or the file is "
            "hostile. Replace it with the official file."
        )
    return dims, size


def _shape(dims: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in dims)


def parse_idx(data: bytes, expected_magic: int, source: str | Path = "<bytes>",
              max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """The uint8 array held by IDX ``data`` (already decompressed), shaped as its header says
    (a read-only view of ``data``).

    Raises :class:`~numpyml_core.UserError` naming ``source`` when the magic number is not
    ``expected_magic``, the header declares more than ``max_bytes``, or the size disagrees with
    the header (truncated file, trailing bytes).
    """
    ndim = _check_magic(data[:4], expected_magic, source)
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise UserError(
            f"{source} is truncated: its IDX header needs {header_size} bytes but the file holds "
            f"{len(data)}. Replace it with a fresh copy."
        )
    dims, size = _declared(data[4:header_size], ndim, source, max_bytes)
    expected_size = header_size + size
    if len(data) != expected_size:
        problem = "is truncated" if len(data) < expected_size else "has trailing bytes after the data"
        raise UserError(
            f"{source} {problem}: its header says {_shape(dims)} (so {expected_size} bytes with the header) "
            f"but it holds {len(data)} bytes. Replace it with a fresh copy."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def _read_exactly(stream, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; the number of bytes read (less only at the end of the data)."""
    filled = 0
    while filled < len(buffer):
        n = stream.readinto(buffer[filled:])
        if not n:
            break
        filled += n
    return filled


def read_idx(path: str | Path, expected_magic: int, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, detected by content) from ``path``.

    The header is read first; then exactly the bytes it declares are read (decompressed as a
    stream) into a new uint8 array, and one more byte is asked for to check that nothing follows.
    Memory is bounded by the declared size, itself bounded by ``max_bytes`` (default
    :data:`MAX_IDX_BYTES`) and, for gzip files, by the most that file could inflate to. The
    array is read-only (it is shared by every load in the process). Every problem raises
    :class:`~numpyml_core.UserError` naming ``path``: unreadable, corrupt gzip, bad magic number,
    truncated, more data than the header declares, a declared size over the limit or beyond what
    the machine can allocate.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}.") from None
    with handle:
        compressed = False
        try:
            file_size = os.fstat(handle.fileno()).st_size
            compressed = handle.read(2) == b"\x1f\x8b"
            handle.seek(0)
            stream = gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle
            return _read_stream(stream, path, expected_magic, max_bytes, file_size, compressed)
        except UserError:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            if not compressed:
                raise UserError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}.") from None
            raise UserError(
                f"{path} is a corrupt or truncated gzip file ({exc}). Replace it with a fresh copy "
                "(delete it if it was downloaded into the cache, and it will be downloaded again)."
            ) from None


def _read_stream(stream, path: Path, expected_magic: int, max_bytes: int, file_size: int,
                 compressed: bool) -> np.ndarray:
    head = stream.read(4)
    ndim = _check_magic(head, expected_magic, path, None if compressed else file_size)
    header_size = 4 + 4 * ndim
    dims_bytes = stream.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        held = f"{header_size - 4 * ndim + len(dims_bytes)} bytes" + (" once decompressed" if compressed else "")
        raise UserError(
            f"{path} is truncated: its IDX header needs {header_size} bytes but the file holds {held}. "
            "Replace it with a fresh copy."
        )
    dims, size = _declared(dims_bytes, ndim, path, max_bytes)
    expected_size = header_size + size
    if compressed and size > _MAX_GZIP_RATIO * file_size:
        raise UserError(
            f"{path} is truncated: its header says {_shape(dims)} ({expected_size} bytes with the header) "
            f"but a gzip file of {file_size} bytes cannot hold that much. Replace it with a fresh copy."
        )
    if not compressed and file_size != expected_size:
        problem = "is truncated" if file_size < expected_size else "has trailing bytes after the data"
        raise UserError(
            f"{path} {problem}: its header says {_shape(dims)} (so {expected_size} bytes with the header) "
            f"but it holds {file_size} bytes. Replace it with a fresh copy."
        )
    try:
        array = np.empty(size, dtype=np.uint8)
    except MemoryError:
        raise UserError(
            f"{path}: its header declares {_shape(dims)} = {size} bytes of data, more than this machine can "
            "allocate now. Free memory, or check the file (replace it with the official one)."
        ) from None
    filled = _read_exactly(stream, memoryview(array))
    if filled < size:
        held = f"{header_size + filled} bytes" + (" once decompressed" if compressed else "")
        raise UserError(
            f"{path} is truncated: its header says {_shape(dims)} (so {expected_size} bytes with the header) "
            f"but it holds {held}. Replace it with a fresh copy."
        )
    if stream.read(1):
        raise UserError(
            f"{path} holds more data than the header declares: its header says {_shape(dims)} (so "
            f"{expected_size} bytes with the header), and more bytes follow"
            + (" once decompressed" if compressed else "")
            + ". The file is corrupt or hostile; replace it with the official file."
        )
    array.flags.writeable = False  # shared by every load in this process (see mnist's cache)
    return array.reshape(dims)


def read_idx_images(path: str | Path) -> np.ndarray:
    """uint8 images ``(N, rows, cols)`` from an IDX image file."""
    return read_idx(path, IMAGES_MAGIC)


def read_idx_labels(path: str | Path, num_classes: int | None = None) -> np.ndarray:
    """uint8 labels ``(N,)`` from an IDX label file, checked to lie in ``0..num_classes-1``."""
    labels = read_idx(path, LABELS_MAGIC)
    if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
        bad = np.flatnonzero(labels >= num_classes)
        raise UserError(
            f"{path}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range 0..{num_classes - 1} "
            f"({bad.size} labels out of range). Replace it with the official file."
        )
    return labels
