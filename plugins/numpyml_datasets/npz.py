"""``npz``: arrays from a NumPy ``.npz`` file in the Keras layout (``x_train``, ``y_train``, ``x_test``,
``y_test``, as ``keras.datasets.mnist`` ships ``mnist.npz``).

Reading is bounded by what the file really holds, whatever its headers claim: every member's ``.npy``
header is read first (``numpy.lib.format``, a literal parser, no pickle), its dtype must be numeric and
its declared size must equal the member's size in the zip directory (and that size must be possible for
the compressed bytes), all before anything is allocated. Uncompressed members (``np.savez``) are
memory-mapped in place (nothing is read twice or copied); compressed ones (``np.savez_compressed``) are
inflated straight into their array, stopping at the declared size.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from numpyml_core import UserError
from numpyml_core.plugin_api import ArraySplit

from . import _files

#: deflate inflates at most 1032:1; a member declaring more than this times its compressed size is corrupt
_MAX_DEFLATE_RATIO = 1032
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip local file header (30 bytes)


class NpzFileError(UserError):
    pass


def _member_name(names: list[str], key: str) -> str | None:
    for candidate in (f"{key}.npy", key):
        if candidate in names:
            return candidate
    return None


def _keys(names: list[str]) -> list[str]:
    return sorted(n[:-4] if n.endswith(".npy") else n for n in names)


class _Member:
    """One ``.npy`` member of an npz: its header, checked against the zip directory."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, name: str, key: str):
        self.path, self.name, self.key = path, name, key
        self.info = archive.getinfo(name)
        where = f"{path} (array '{key}')"
        try:
            with archive.open(self.info) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                header = stream.tell()  # magic, version, length field and header text
        except (ValueError, EOFError, zipfile.BadZipFile, zlib.error, OSError, SyntaxError) as exc:
            raise NpzFileError(f"{where} is not a readable .npy array ({exc}); expected an array saved by numpy.savez "
                               "or numpy.savez_compressed. Save the file again.") from None
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
            raise NpzFileError(f"{where} holds values of type {dtype}, expected numbers (integers or floats). "
                               "Object and structured arrays are refused.")
        self.shape, self.fortran, self.dtype = tuple(int(d) for d in shape), bool(fortran), dtype
        _files.check_size(where, self.shape, dtype.itemsize, "the array")
        self.nbytes = dtype.itemsize * int(np.prod(self.shape, dtype=object))
        if self.info.file_size != header + self.nbytes:
            raise NpzFileError(
                f"{where}: its header declares shape {self.shape} of {dtype} ({self.nbytes:,} bytes) but the member "
                f"holds {max(self.info.file_size - header, 0):,} bytes of data; the file is truncated or corrupt. "
                "Save it again.")
        if self.info.compress_type != zipfile.ZIP_STORED and self.info.file_size > _MAX_DEFLATE_RATIO * max(
                self.info.compress_size, 1):
            raise NpzFileError(f"{where}: declares {self.info.file_size:,} bytes from {self.info.compress_size:,} "
                               "compressed bytes, more than deflate can produce; the file is corrupt.")
        self.data_offset = header

    def read(self) -> np.ndarray:
        """The array: memory-mapped when the member is stored uncompressed, else inflated into place."""
        where = f"{self.path} (array '{self.key}')"
        order = "F" if self.fortran else "C"
        if self.nbytes == 0:
            return np.empty(self.shape, self.dtype, order=order)
        if self.info.compress_type == zipfile.ZIP_STORED and self.info.flag_bits & 0x1 == 0:
            with open(self.path, "rb") as handle:
                handle.seek(self.info.header_offset)
                local = handle.read(_LOCAL_HEADER.size)
                if len(local) == _LOCAL_HEADER.size and local[:4] == b"PK\x03\x04":
                    fields = _LOCAL_HEADER.unpack(local)
                    start = self.info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1] + self.data_offset
                    if start + self.nbytes <= os.fstat(handle.fileno()).st_size:
                        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=start, shape=self.shape,
                                         order=order)
            raise NpzFileError(f"{where}: the file ends before the array's {self.nbytes:,} bytes; it is truncated. "
                               "Save it again.")
        array = np.empty(self.shape, self.dtype, order=order)
        view = memoryview(array.reshape(-1, order="A").view(np.uint8))
        filled = 0
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.info) as stream:
                stream.read(self.data_offset)
                while filled < self.nbytes:
                    got = stream.readinto(view[filled:filled + (1 << 22)])
                    if not got:
                        break
                    filled += got
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise NpzFileError(f"{where} is corrupt or truncated ({exc}); save the file again.") from None
        if filled != self.nbytes:
            raise NpzFileError(f"{where}: holds {filled:,} of the {self.nbytes:,} bytes its header declares; the file "
                               "is truncated. Save it again.")
        return array


class NPZ:
    """A dataset from a NumPy ``.npz`` file in the Keras layout.

    * ``path``: the ``.npz`` file (absolute, relative to the current folder, or relative to
      ``--data-dir`` / ``NUMPYML_DATA_DIR``).
    * ``x_train``, ``y_train``, ``x_test``, ``y_test``: the names of the four arrays (Keras's by default).
    * ``num_classes``: default one more than the largest label; ``class_names``: one per class
      (default ``"0"``, ``"1"``, ...).
    * ``normalize``: standardize every split per channel (last axis) with ``mean``/``std`` if given,
      else with the training array's statistics (in batch units: uint8 pixels as fractions of 255).

    Inputs: images ``(N, H, W)`` (a channel axis is added) or ``(N, H, W, C)``, or feature rows
    ``(N, F)``; uint8 is scaled to [0, 1], floats are kept. Labels: integers ``(N,)`` (or ``(N, 1)``).
    Uncompressed files are memory-mapped; ``[dataset] validation = N`` holds out the last N training
    samples.
    """

    title = "npz"

    def __init__(self, path: str, x_train: str = "x_train", y_train: str = "y_train", x_test: str = "x_test",
                 y_test: str = "y_test", num_classes: int | None = None, class_names: list[str] | None = None,
                 normalize: bool = False, mean: list[float] | None = None, std: list[float] | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError(f"path must name an .npz file, got {path!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        _files.check_normalization(normalize, mean, std)
        self.path = str(path)
        self.keys = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        self._num_classes = num_classes
        self._class_names = None if class_names is None else [str(c) for c in class_names]
        self.normalize, self.mean, self.std = bool(normalize), mean, std
        self._data_dir: str | os.PathLike | None = None

    def __repr__(self) -> str:
        return f"NPZ(path={self.path!r})"

    # -- headers (cheap: what validate needs) ------------------------------------------------------
    def _file(self) -> Path:
        return _files.resolve_path(self.path, "file", self.title, self._data_dir)

    def _members(self) -> dict[str, _Member]:
        path = self._file()
        return _files.cached(_files.cache_key("npz-headers", path, tuple(self.keys.values())),
                             lambda: self._read_headers(path))

    def _read_headers(self, path: Path) -> dict[str, _Member]:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                missing = [key for key in self.keys.values() if _member_name(names, key) is None]
                if missing:
                    raise NpzFileError(
                        f"{path}: no array named {', '.join(repr(m) for m in missing)}; the file holds "
                        f"{', '.join(repr(k) for k in _keys(names)) or 'no arrays'}. Expected the Keras layout "
                        "(x_train, y_train, x_test, y_test) or give the names in the [dataset] table (x_train = "
                        "\"images\", ...).")
                members = {role: _Member(path, archive, _member_name(names, key), key)  # type: ignore[arg-type]
                           for role, key in self.keys.items()}
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile) and exc.strerror:
                raise NpzFileError(f"cannot read {path}: {exc.strerror}.") from None
            raise NpzFileError(f"{path} is not a readable .npz file ({exc}); it is truncated or not made by "
                               "numpy.savez. Save it again.") from None
        for split in ("train", "test"):
            x, y = members[f"x_{split}"], members[f"y_{split}"]
            if len(x.shape) not in (2, 3, 4) or any(d < 1 for d in x.shape[1:]):
                raise NpzFileError(f"{path}: array '{x.key}' has shape {x.shape}; expected images (N, H, W) or "
                                   "(N, H, W, C), or feature rows (N, F).")
            if not (len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[1] == 1)):
                raise NpzFileError(f"{path}: array '{y.key}' has shape {y.shape}; expected one integer label per "
                                   "sample, (N,).")
            if x.shape[0] != y.shape[0]:
                raise NpzFileError(f"{path}: '{x.key}' holds {x.shape[0]} samples but '{y.key}' holds "
                                   f"{y.shape[0]} labels; there must be one label per sample.")
        train, test = members["x_train"].shape, members["x_test"].shape
        if train[1:] != test[1:]:
            raise NpzFileError(f"{path}: training samples have shape {train[1:]} but test samples {test[1:]}; "
                               "both splits must have the same shape.")
        return members

    @property
    def input_shape(self) -> tuple[int, ...]:
        shape = self._members()["x_train"].shape[1:]
        return (*shape, 1) if len(shape) == 2 else shape

    @property
    def split_sizes(self) -> dict[str, int]:
        members = self._members()
        return {"train": members["x_train"].shape[0], "test": members["x_test"].shape[0]}

    def _labels(self) -> dict[str, np.ndarray]:
        members = self._members()
        path = self._file()

        def read() -> dict[str, np.ndarray]:
            result = {}
            for split in ("train", "test"):
                member = members[f"y_{split}"]
                labels = np.asarray(member.read()).reshape(-1)
                result[split] = _files.integer_labels(f"{path} (array '{member.key}')", labels, self._num_classes)
            return result

        return _files.cached(_files.cache_key("npz-labels", path, tuple(self.keys.values()), self._num_classes), read)

    @property
    def num_classes(self) -> int:
        if self._num_classes is not None:
            return self._num_classes
        labels = self._labels()
        return int(max(int(y.max()) if y.size else 0 for y in labels.values())) + 1

    @property
    def class_names(self) -> list[str]:
        return _files.check_class_names(self.title, self._class_names, self.num_classes)

    # -- the data ----------------------------------------------------------------------------------
    def load(self, data_dir: str | None = None) -> dict[str, ArraySplit]:
        """``{"train": ..., "test": ...}``; the arrays memory-mapped when the file is uncompressed."""
        self._data_dir = data_dir
        members = self._members()
        labels = self._labels()
        self.class_names  # checks the names against the classes
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split in ("train", "test"):
            x = members[f"x_{split}"].read()
            if x.ndim == 3:
                x = x.reshape(*x.shape, 1)
            arrays[split] = (x, labels[split])
        path = str(self._file())
        return _files.make_splits(self.title, arrays, {"train": path, "test": path}, self.normalize, self.mean,
                                  self.std)
