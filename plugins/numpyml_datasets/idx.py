"""Reading IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

An IDX file is a big-endian header followed by the raw data:

* 4 bytes of magic number: two zero bytes, a type byte (``0x08`` = unsigned byte) and the number
  of dimensions (``0x03`` for images ``(N, rows, cols)``, ``0x01`` for labels ``(N,)``);
* one big-endian uint32 per dimension;
* ``prod(dims)`` bytes of data, nothing after.

Files may be gzip-compressed (detected by content, not by name). Parsing is a single
:func:`numpy.frombuffer`, no per-sample loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from numpyml_core import UserError
from numpyml_core.data import read_maybe_gzip

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

_WHAT = {IMAGES_MAGIC: "an IDX image file", LABELS_MAGIC: "an IDX label file"}


def parse_idx(data: bytes, expected_magic: int, source: str | Path = "<bytes>") -> np.ndarray:
    """The uint8 array held by IDX ``data`` (already decompressed), shaped as its header says.

    Raises :class:`~numpyml_core.UserError` naming ``source`` when the magic number is not
    ``expected_magic`` or the size disagrees with the header (truncated file, trailing bytes).
    """
    what = _WHAT.get(expected_magic, f"an IDX file with magic 0x{expected_magic:08x}")
    if len(data) < 4:
        raise UserError(
            f"{source} is not {what}: it holds only {len(data)} bytes, too short for an IDX header "
            "(the file is truncated or empty). Replace it with a fresh copy."
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        hint = ""
        if magic in _WHAT:
            hint = f" (it looks like {_WHAT[magic]}: are the image and label file names swapped?)"
        elif data[:1] == b"<" or data[:5].lower() in (b"<!doc", b"<html"):
            hint = " (it looks like an HTML page: a failed download?)"
        raise UserError(
            f"{source}: bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for {what}{hint}. "
            "Replace it with the official file."
        )
    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise UserError(
            f"{source} is truncated: its IDX header needs {header_size} bytes but the file holds "
            f"{len(data)}. Replace it with a fresh copy."
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected_size = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected_size:
        problem = "is truncated" if len(data) < expected_size else "has trailing bytes after the data"
        shape = " x ".join(str(d) for d in dims)
        raise UserError(
            f"{source} {problem}: its header says {shape} (so {expected_size} bytes with the header) "
            f"but it holds {len(data)} bytes. Replace it with a fresh copy."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def read_idx(path: str | Path, expected_magic: int) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) from ``path``; see :func:`parse_idx`."""
    return parse_idx(read_maybe_gzip(path), expected_magic, source=path)


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
