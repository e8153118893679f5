"""CIFAR-10 and CIFAR-100 (https://www.cs.toronto.edu/~kriz/cifar.html): 32x32 colour images,
50,000 for training and 10,000 for test, in 10 classes or in 100 fine / 20 coarse classes.

Both ship in the official "python version" layout, a folder of pickled dicts:

* CIFAR-10, ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
  (keys ``data``: uint8 ``(N, 3072)``, rows of 1024 red, then green, then blue values, each
  row-major 32x32; ``labels``: a list of N ints) and ``batches.meta`` (``label_names``);
* CIFAR-100, ``cifar-100-python/``: ``train`` and ``test`` (keys ``data``, ``fine_labels``,
  ``coarse_labels``) and ``meta`` (``fine_label_names``, ``coarse_label_names``).

Where the files are looked for, in order:

1. ``<data_dir>/cifar10/cifar-10-batches-py/`` (``<data_dir>/cifar100/cifar-100-python/``), where
   ``data_dir`` is the CLI's ``--data-dir`` or else ``NUMPYML_DATA_DIR``;
2. the download cache, ``files.cache_dir()/cifar10/cifar-10-batches-py/``;
3. the official archive ``cifar-10-python.tar.gz`` (``cifar-100-python.tar.gz``) in one of those
   dataset folders, checked against its md5 and sha256 and extracted into the cache;
4. when ``download`` is true, the official archive downloaded into the cache (checksums checked,
   atomically) and extracted there.

Extraction is safe and atomic: only regular files and folders under the archive's one expected
top folder are accepted (absolute names, ``..``, links and devices are refused), they are written
into a temporary folder next to the destination and that folder is renamed into place at the end,
so an interrupted extraction never leaves a half-filled dataset folder.

The files are pickles, and unpickling can run code. They are read with :class:`RestrictedUnpickler`,
which constructs nothing but the builtin containers and NumPy arrays (``ndarray``, ``dtype`` and
NumPy's array reconstruction functions); anything else in a file is refused before it is built.
The structure is then checked (keys, dtype, shape, label ranges), with errors naming the file.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import pickletools
import re
import shutil
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from numpyml_core import UserError
from numpyml_core import plugin_api
from numpyml_core.plugin_api import ArraySplit

from . import files

IMAGE_SHAPE = (32, 32, 3)
PIXELS = 32 * 32 * 3

#: Per-channel (R, G, B) mean and standard deviation of the official training images, in [0, 1]
#: units: the published constants (they are what the 50,000 training images give; recomputing them
#: on the shared copy agrees to 4 decimals, see tests/test_cifar.py). Fixed constants rather than
#: statistics of whatever files are loaded, so training, validation and test are normalized alike
#: and the held-out validation images do not leak into the statistics.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]
CIFAR100_FINE_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]
CIFAR100_COARSE_CLASSES = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
]


# --------------------------------------------------------------------------------------------
# restricted unpickling
# --------------------------------------------------------------------------------------------
#: dtype strings a CIFAR array may have: booleans, integers, floats, complex (no objects, no
#: records, no sub-arrays), with an optional byte order.
_DTYPE_SPEC = re.compile(r"[<>|=]?(?:b1|[iu][1248]|f[248]|c(?:8|16))")

#: How deep containers may nest in a CIFAR pickle (the official files nest 2 deep).
_MAX_DEPTH = 32


def _refuse(message: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(message)


def _string(value: Any) -> str | None:
    """``value`` as str when it is str or (Python 2 pickles) ASCII bytes, else None."""
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _shape_of(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > 32 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise _refuse(f"an array shape must be a tuple of non-negative integers, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    size = dtype.itemsize
    for d in shape:
        size *= d  # Python ints: no overflow
    return size


class _DtypeStub:
    """What ``numpy.dtype(spec, align, copy)`` builds while unpickling: the spec and, after BUILD,
    the byte order; turned into a real :class:`numpy.dtype` only when it is a plain numeric type."""

    def __init__(self, spec: Any = None, align: Any = False, copy: Any = True):
        text = _string(spec)
        if text is None or not _DTYPE_SPEC.fullmatch(text):
            raise _refuse(f"refused the NumPy dtype {_short(spec)} (CIFAR arrays hold plain numbers; no "
                          "object, record or sub-array types)")
        self.dtype = np.dtype(text)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 5 or any(v is not None for v in state[2:5]):
            raise _refuse(f"refused a NumPy dtype state {_short(state)} (only plain numeric types)")
        order = _string(state[1])
        if order not in ("<", ">", "|", "="):
            raise _refuse(f"refused a NumPy dtype byte order {_short(state[1])}")
        if order in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


def _as_dtype(value: Any) -> np.dtype:
    if isinstance(value, _DtypeStub):
        return value.dtype
    text = _string(value)
    if text is not None and (text in ("b", "B") or _DTYPE_SPEC.fullmatch(text)):
        return np.dtype(text)
    raise _refuse(f"refused the NumPy dtype {_short(value)} (only plain numeric types)")


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle: accepted as the class argument of
    ``_reconstruct`` and nothing else (calling ``numpy.ndarray`` itself would allocate any shape)."""

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(f"refused numpy.ndarray{_short(args)} called directly (it allocates any number of bytes "
                      "it is told; NumPy's own pickles never do this)")


_NDARRAY = _NdarrayMarker()


class _ArrayStub:
    """An array being unpickled: ``_reconstruct`` makes it, BUILD (``__setstate__``) gives it its
    shape, dtype and data; :func:`_resolve` swaps it for the finished array. Every size is checked
    against the bytes really present before anything is allocated."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, is_fortran, data)
        if not isinstance(state, tuple) or len(state) != 4:
            raise _refuse(f"refused a NumPy array state {_short(state)}")
        shape, dtype, fortran, raw = state
        shape = _shape_of(shape)
        if not isinstance(dtype, _DtypeStub):
            raise _refuse(f"refused the NumPy dtype {_short(dtype)} in an array state")
        if not isinstance(raw, (bytes, bytearray)):
            raise _refuse(f"refused array data of type {type(raw).__name__} (expected bytes; object "
                          "arrays are not accepted)")
        self.array = _array_from(raw, dtype.dtype, shape, "F" if fortran else "C")


def _array_from(raw: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    declared = _nbytes(shape, dtype)
    held = memoryview(raw).nbytes
    if declared != held:
        raise _refuse(
            f"an array declares shape {_short(shape)} of {dtype} ({declared} bytes) but its data holds "
            f"{held} bytes"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only what CIFAR files hold: dicts, lists, str/bytes, numbers and
    NumPy arrays of plain numeric types. Any other global (``os.system``, ``builtins.eval``, any
    class) is refused with :class:`pickle.UnpicklingError` before it is looked up, so a hostile
    file cannot run code.

    The NumPy names a pickled array uses (``numpy.ndarray``, ``numpy.dtype``, ``_reconstruct`` in
    ``numpy.core.multiarray`` or ``numpy._core.multiarray``, ``_frombuffer`` in ``numeric`` for
    protocol 5) are mapped to checking stand-ins, not to NumPy's functions: every declared shape
    and dtype is checked against the bytes the file really holds (and ``_reconstruct``'s initial
    array against the file's size) before anything is allocated, and object, record and
    sub-array dtypes are refused (NumPy can crash on a crafted object-array state). Python 3
    pickles of protocol 2 spell bytes as ``_codecs.encode(text, "latin1")`` (and empty bytes as
    ``bytes()``): exactly those two forms are accepted, nothing else from ``_codecs`` or
    ``builtins``. Use :func:`restricted_load`, which also checks every length the pickle declares
    before the unpickler allocates it.

    Python 2 pickles (the official files) are read with ``encoding="bytes"``: their str keys and
    values arrive as ``bytes``.
    """

    #: (module, name) -> the stand-in built for that global.
    ALLOWED: dict[tuple[str, str], str] = {
        ("numpy", "ndarray"): "ndarray",
        ("numpy", "dtype"): "dtype",
        ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
        ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
        ("numpy.core.numeric", "_frombuffer"): "frombuffer",
        ("numpy._core.numeric", "_frombuffer"): "frombuffer",
        ("_codecs", "encode"): "encode",
        ("builtins", "bytes"): "bytes",
        ("__builtin__", "bytes"): "bytes",
    }

    def __init__(self, file: Any, limit: int | None = None):
        """``limit``: the size of the whole pickle, which bounds the array ``_reconstruct`` may make."""
        super().__init__(file, encoding="bytes")
        self.limit = limit if limit is not None else 0

    def find_class(self, module: str, name: str) -> Any:
        kind = self.ALLOWED.get((module, name))
        if kind is None:
            raise pickle.UnpicklingError(
                f"refused to construct '{module}.{name}' (a CIFAR file holds only dicts, lists, strings, "
                "numbers and NumPy arrays)"
            )
        # not the bound method self._reconstruct: kept in the unpickler's memo, it would make a reference
        # cycle holding the file's objects (tens of MB per CIFAR batch) until the next garbage collection
        reconstruct = functools.partial(_reconstruct, limit=self.limit)
        return {"ndarray": _NDARRAY, "dtype": _DtypeStub, "reconstruct": reconstruct,
                "frombuffer": _frombuffer, "encode": _latin1_encode, "bytes": _empty_bytes}[kind]

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id (not used by CIFAR files)")


def _reconstruct(cls: Any = None, shape: Any = None, typecode: Any = None, *, limit: int) -> _ArrayStub:
    """``numpy.core.multiarray._reconstruct`` as pickles call it, refusing an array larger than ``limit``
    (the whole file's size)."""
    if cls is not _NDARRAY:
        raise _refuse(f"refused to reconstruct {_short(cls)} (only numpy.ndarray)")
    shape = _shape_of(shape)
    dtype = _as_dtype(typecode)
    declared = _nbytes(shape, dtype)
    if declared > limit:
        raise _refuse(
            f"an array declares shape {_short(shape)} of {dtype} ({declared} bytes) but the whole file "
            f"is {limit} bytes"
        )
    return _ArrayStub(np.zeros(shape, dtype=dtype))


def _frombuffer(buffer: Any = None, dtype: Any = None, shape: Any = None, order: Any = "C") -> np.ndarray:
    if not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)):
        raise _refuse(f"refused array data of type {type(buffer).__name__} (expected bytes)")
    order = _string(order)
    if order not in ("C", "F"):
        raise _refuse(f"refused an array order {_short(order)}")
    return _array_from(buffer, _as_dtype(dtype), _shape_of(shape), order)


def _latin1_encode(*args: Any) -> bytes:
    """``_codecs.encode(text, "latin1")``, the way Python 3 pickles bytes in protocol 2; nothing else."""
    if (len(args) == 2 and isinstance(args[0], str) and _string(args[1]) in ("latin1", "latin-1")
            and max(args[0], default="\0") <= "\xff"):
        return args[0].encode("latin-1")
    raise _refuse(
        f"refused _codecs.encode{_short(args)} (only _codecs.encode(text, 'latin1'), as Python 3 pickles "
        "bytes in protocol 2, is accepted)"
    )


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how protocol 2 pickles empty bytes; ``bytes(n)`` and the like are refused."""
    if args:
        raise _refuse(f"refused bytes{_short(args)} (only bytes() with no argument is accepted)")
    return b""


def _resolve(obj: Any, depth: int = 0) -> Any:
    """``obj`` with every array stand-in replaced by its array."""
    if depth > _MAX_DEPTH:
        raise _refuse(f"containers nested more than {_MAX_DEPTH} deep (a CIFAR file nests 2 deep)")
    if isinstance(obj, _ArrayStub):
        return obj.array
    if isinstance(obj, (_DtypeStub, _NdarrayMarker)):
        raise _refuse("a NumPy dtype or class outside an array")
    if isinstance(obj, dict):
        return {_resolve(k, depth + 1): _resolve(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, depth + 1) for v in obj)
    return obj


def restricted_load(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`, bounded in memory by ``len(data)``.

    Every length the pickle declares (bytes, strings, big integers) is first checked against the
    bytes that really follow it (by :func:`pickletools.genops`, which reads without allocating
    what a length claims), so a 20-byte file declaring gigabytes is refused before the unpickler
    allocates them. Raises :class:`pickle.UnpicklingError` for refused content and other
    exceptions for garbled data.
    """
    try:
        for opcode, _, _ in pickletools.genops(data):
            if opcode.name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                raise _refuse("refused an out-of-band buffer (not used by CIFAR files)")
    except ValueError as exc:
        raise _refuse(f"the pickle is malformed or declares more data than it holds ({exc})") from None
    return _resolve(RestrictedUnpickler(io.BytesIO(data), limit=len(data)).load())


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def read_pickle_dict(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    """The dict in the CIFAR pickle ``path`` with str keys, checked to hold ``required``.
    Unreadable, hostile or malformed files raise :class:`~numpyml_core.UserError` naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}.") from None
    try:
        obj = restricted_load(raw)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path} is not a CIFAR file that can be read safely: {exc}. Replace it with the file from the "
            "official archive."
        ) from None
    except Exception as exc:  # truncated or garbled pickles raise many kinds of errors
        raise UserError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}). Replace it with the file from "
            "the official archive."
        ) from None
    if not isinstance(obj, dict):
        raise UserError(
            f"{path} holds a {type(obj).__name__}, expected a dict (the official CIFAR python layout). "
            "Replace it with the file from the official archive."
        )
    result = {_text(key): value for key, value in obj.items()}
    missing = [key for key in required if key not in result]
    if missing:
        found = ", ".join(sorted(str(k) for k in result)) or "none"
        raise UserError(
            f"{path} lacks the key{'s' if len(missing) > 1 else ''} {', '.join(repr(k) for k in missing)} "
            f"(it has: {found}). Is this the right file of the right data set? Replace it with the file "
            "from the official archive."
        )
    return result


def parse_images(path: Path, value: Any) -> np.ndarray:
    """uint8 ``(N, 3072)`` rows (channel-planar) -> uint8 NHWC ``(N, 32, 32, 3)`` (a transposed
    view), checked."""
    if not isinstance(value, np.ndarray):
        raise UserError(f"{path}: 'data' is a {type(value).__name__}, expected a uint8 NumPy array (N, 3072).")
    if value.dtype != np.uint8:
        raise UserError(f"{path}: 'data' has dtype {value.dtype}, expected uint8.")
    if value.ndim != 2 or value.shape[1] != PIXELS:
        raise UserError(
            f"{path}: 'data' has shape {value.shape}, expected (N, {PIXELS}) (32x32 pixels x 3 channels per "
            "row). Is this the right data set?"
        )
    return value.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def parse_labels(path: Path, key: str, value: Any, count: int, num_classes: int) -> np.ndarray:
    """A list (or 1-D integer array) of ``count`` labels in ``0..num_classes-1`` -> int64 array.

    The range is checked on the values as stored (Python integers of any size, or the array's own
    integer type), so a label too large for 64 bits is reported like any other out-of-range label."""
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        bad = [i for i, v in enumerate(value) if not 0 <= int(v) < num_classes]
        if bad:
            raise UserError(
                f"{path}: '{key}' label {int(value[bad[0]])} at index {bad[0]} is out of range "
                f"0..{num_classes - 1} ({len(bad)} labels out of range)."
            )
        array = np.asarray(value, dtype=np.int64) if value else np.zeros(0, dtype=np.int64)
    else:
        raise UserError(f"{path}: '{key}' must be a list of integer labels, got {type(value).__name__}.")
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise UserError(f"{path}: '{key}' must be a 1-D list of integers, got shape {array.shape} of {array.dtype}.")
    if len(array) != count:
        raise UserError(
            f"{path}: {count} images in 'data' but {len(array)} labels in '{key}'; they must match. Replace "
            "the file with the one from the official archive."
        )
    if array.size and (array.min() < 0 or array.max() >= num_classes):  # in the array's own type
        bad = np.flatnonzero((array < 0) | (array >= num_classes))
        raise UserError(
            f"{path}: '{key}' label {int(array[bad[0]])} at index {int(bad[0])} is out of range "
            f"0..{num_classes - 1} ({bad.size} labels out of range)."
        )
    return array.astype(np.int64)


def parse_names(path: Path, key: str, value: Any, count: int) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, bytes)) for v in value):
        raise UserError(f"{path}: '{key}' must be a list of class names, got {type(value).__name__}.")
    names = [_text(v) for v in value]
    if len(names) != count:
        raise UserError(f"{path}: '{key}' holds {len(names)} class names, expected {count}.")
    return names


# --------------------------------------------------------------------------------------------
# safe, atomic extraction
# --------------------------------------------------------------------------------------------
def _member_parts(member: tarfile.TarInfo, top: str) -> tuple[str, ...]:
    """The path components of an archive member, refusing anything that could leave the
    destination or is not a plain file or folder."""
    name = member.name
    if not member.isfile() and not member.isdir():
        what = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                else "a device or fifo" if (member.ischr() or member.isblk() or member.isfifo()) else "a special entry")
        raise ValueError(f"member '{name}' is {what}")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"member '{name}' has an absolute path")
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    if any(p == ".." for p in parts):
        raise ValueError(f"member '{name}' contains '..'")
    if not parts or parts[0] != top:
        raise ValueError(f"member '{name}' is outside the expected folder '{top}/'")
    return parts


def safe_extract(archive: Path, top: str, destination: Path) -> Path:
    """Extract the folder ``top`` of the tar archive ``archive`` into ``destination/top``; return it.

    Every member must be a regular file or a folder named ``top/...`` (no absolute names, no
    ``..``, no links, devices or fifos): otherwise nothing is extracted and
    :class:`~numpyml_core.UserError` names the archive and the member. Files are written into a
    temporary folder in ``destination``, which is renamed into place when everything has been
    written; an existing ``destination/top`` is left as it is.
    """
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / top
    staging = Path(tempfile.mkdtemp(prefix=f".{top}.", suffix=".extracting", dir=destination))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()  # reads the whole index: truncation shows here
                checked = [(member, _member_parts(member, top)) for member in members]
                if not any(member.isfile() for member, _ in checked):
                    raise ValueError("it holds no files")
                root = staging.resolve()
                for member, parts in checked:
                    path = staging.joinpath(*parts)
                    if root not in path.resolve().parents and path.resolve() != root:
                        raise ValueError(f"member '{member.name}' would be written outside the folder")
                    if member.isdir():
                        path.mkdir(parents=True, exist_ok=True)
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:  # pragma: no cover - isfile() members always have data
                        raise ValueError(f"member '{member.name}' has no data")
                    with source, open(path, "xb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
        except ValueError as exc:
            raise UserError(
                f"refusing to extract {archive}: {exc}. It is not the official archive; delete it (it will be "
                "downloaded again) or replace it with the official file."
            ) from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise UserError(
                f"{archive} is corrupt or truncated ({type(exc).__name__}: {exc}). Delete it (it will be "
                "downloaded again) or replace it with the official file."
            ) from None
        except OSError as exc:
            raise UserError(f"cannot extract {archive} into {destination}: {exc.strerror or exc}.") from None
        if not (staging / top).is_dir():
            raise UserError(f"{archive} holds no folder '{top}/'; it is not the official archive.")
        try:
            os.rename(staging / top, target)
        except OSError:
            if not target.is_dir():  # another process may have finished first: then use its copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------
# the datasets
# --------------------------------------------------------------------------------------------
#: Parsed splits of this process: (resolved folder, file stats, label key) -> (images, labels).
_SPLIT_CACHE: dict[tuple, tuple[np.ndarray, dict[str, np.ndarray]]] = {}


def clear_cache() -> None:
    """Forget every file parsed so far in this process."""
    _SPLIT_CACHE.clear()


class _CifarDataset:
    """Shared machinery of CIFAR-10 and CIFAR-100; subclasses set the class attributes."""

    title = ""
    folder = ""  # sub-folder of the data directory and of the cache
    top = ""  # the folder inside the archive
    archive = ""
    url = ""
    md5 = ""
    sha256 = ""
    split_files: dict[str, tuple[str, ...]] = {}
    meta_file = ""
    label_keys: tuple[str, ...] = ()  # every label key the data files hold
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    input_shape = IMAGE_SHAPE
    #: The official split sizes, the most :meth:`load` returns (see the Dataset protocol).
    split_sizes = {"train": 50000, "test": 10000}

    def __init__(self, download: bool, normalize: bool, label_key: str, names_key: str, class_names: list[str]):
        self.download = download
        self.normalize = normalize
        self.label_key = label_key
        self.names_key = names_key
        self.class_names = list(class_names)
        self.num_classes = len(class_names)

    # -- where the files are -------------------------------------------------------------------
    def search_dirs(self, data_dir: str | os.PathLike | None) -> list[Path]:
        """The dataset folders, in order: ``<data dir>/<folder>``, then ``<cache>/<folder>``."""
        return files.search_directories((self.folder,), data_dir)

    def _cache_folder(self) -> Path:
        return files.cache_dir() / self.folder

    def _complete(self, folder: Path) -> bool:
        names = [name for group in self.split_files.values() for name in group] + [self.meta_file]
        return all((folder / name).is_file() for name in names)

    def locate(self, data_dir: str | os.PathLike | None) -> Path:
        """The extracted folder (``.../cifar-10-batches-py``), extracting or downloading the
        official archive into the cache when needed and allowed."""
        dirs = self.search_dirs(data_dir)
        partial = []
        for d in dirs:
            folder = d / self.top
            if self._complete(folder):
                return folder
            if folder.is_dir():
                partial.append(folder)
        cache = self._cache_folder()
        archive = files.find_file([self.archive], dirs)
        if archive is not None:
            self._verify_archive(archive)
        elif self.download:
            archive = cache / self.archive
            print(f"numpyml: downloading {self.title} from {self.url} to {archive}", file=sys.stderr)
            try:
                files.download(self.url, archive, self.md5, sha256=self.sha256)
            except UserError as exc:
                raise UserError(f"{exc} " + self._missing_message(dirs, data_dir, partial, "the download failed")) from None
        else:
            raise UserError(self._missing_message(dirs, data_dir, partial, "downloading is switched off (download = false)"))
        print(f"numpyml: extracting {archive} into {cache}", file=sys.stderr)
        if (cache / self.top).exists():  # an incomplete earlier copy: set it aside, then replace it
            stale = Path(tempfile.mkdtemp(prefix=f".{self.top}.", suffix=".stale", dir=cache))
            os.rename(cache / self.top, stale / self.top)
            shutil.rmtree(stale, ignore_errors=True)
        folder = safe_extract(archive, self.top, cache)
        if not self._complete(folder):
            raise UserError(
                f"{archive} was extracted into {folder} but some files of the official layout are missing; "
                "it is not the official archive. Delete both and try again."
            )
        return folder

    def _verify_archive(self, archive: Path) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        with open(archive, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != self.md5:
            raise UserError(
                f"{archive}: md5 is {digest.hexdigest()}, expected {self.md5} for the official {self.archive}. "
                "Delete it (it will be downloaded again) or replace it with the official file."
            )

    def _missing_message(self, dirs: list[Path], data_dir, partial: list[Path], why: str) -> str:
        names = [name for group in self.split_files.values() for name in group] + [self.meta_file]
        lines = [
            f"{self.title}: no complete '{self.top}/' folder ({', '.join(names)}) and no {self.archive} found. "
            f"Looked in: {files.describe_directories(dirs)}; and {why}."
        ]
        for folder in partial:
            missing = [name for name in names if not (folder / name).is_file()]
            lines.append(f"{folder} exists but lacks {', '.join(missing)}.")
        root = data_dir if data_dir is not None else plugin_api.data_dir_from_env()
        if root is not None and (Path(root) / self.top).is_dir():
            lines.append(f"{Path(root) / self.top} exists: move it into {Path(root) / self.folder}/.")
        lines.append(
            f"To fix: pass --data-dir DIR (or set NUMPYML_DATA_DIR=DIR) where DIR/{self.folder}/{self.top}/ holds "
            f"the extracted official files, or put {self.archive} in DIR/{self.folder}/, or allow downloading "
            f"('download = true' in the [dataset] table) into {self._cache_folder()}."
        )
        return " ".join(lines)

    # -- reading -------------------------------------------------------------------------------
    def _read_split(self, folder: Path, names: tuple[str, ...],
                    split: str = "") -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Images (N, 32, 32, 3) uint8 and every label kind of the files ``names`` (of the split
        ``split``, for messages), concatenated; no images at all is an error."""
        paths = [folder / name for name in names]
        key = (str(folder.resolve()), tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths),
               tuple(names), self.label_keys)
        cached = _SPLIT_CACHE.get(key)
        if cached is not None:
            return cached
        # filled file by file into one array sized for files as large as the first (the official
        # batches are all equal), so the training set is never held twice while it is read
        x: np.ndarray | None = None
        filled = 0
        labels: dict[str, list[np.ndarray]] = {k: [] for k in self.label_keys}
        for path in paths:
            content = read_pickle_dict(path, ("data", *self.label_keys))
            batch = parse_images(path, content.pop("data"))
            n = len(batch)
            if x is None:
                x = np.empty((n * len(paths), *IMAGE_SHAPE), dtype=np.uint8)
            elif filled + n > len(x):
                x = np.concatenate([x[:filled], np.empty((filled + n - len(x), *IMAGE_SHAPE), dtype=np.uint8)])
            x[filled:filled + n] = batch
            filled += n
            del batch
            for label_key, classes in zip(self.label_keys, self._label_counts()):
                labels[label_key].append(parse_labels(path, label_key, content[label_key], n, classes))
        assert x is not None
        if filled == 0:
            raise UserError(
                f"{self.title} {split} split: {', '.join(str(p) for p in paths)} "
                f"{'hold' if len(paths) > 1 else 'holds'} no images (an empty split cannot be trained on or "
                "evaluated). Replace the files with the ones from the official archive."
            )
        if filled < len(x):
            x = x[:filled].copy()
        result = (x, {k: np.concatenate(v) for k, v in labels.items()})
        _SPLIT_CACHE[key] = result
        return result

    def _label_counts(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _read_class_names(self, folder: Path) -> list[str]:
        path = folder / self.meta_file
        meta = read_pickle_dict(path, (self.names_key,))
        return parse_names(path, self.names_key, meta[self.names_key], self.num_classes)

    def load(self, data_dir: str | None = None) -> dict[str, ArraySplit]:
        """``{"train": ..., "test": ...}``: uint8 images ``(N, 32, 32, 3)`` with int labels."""
        folder = self.locate(data_dir)
        in_cache = folder.parent == self._cache_folder()
        try:
            self.class_names = self._read_class_names(folder)
            splits: dict[str, ArraySplit] = {}
            for split, names in self.split_files.items():
                images, labels = self._read_split(folder, names, split)
                kwargs = {"mean": self.mean, "std": self.std} if self.normalize else {}
                splits[split] = ArraySplit(images, labels[self.label_key], **kwargs)
        except UserError as exc:
            if in_cache:
                raise UserError(f"{exc} It is in the download cache: delete {folder} to extract it again.") from None
            raise
        return splits


class CIFAR10(_CifarDataset):
    """CIFAR-10: 32x32x3 uint8 images in 10 classes (airplane .. truck), 50,000 for training
    (``data_batch_1`` .. ``data_batch_5``, in that order) and the test images ``test_batch`` holds
    (10,000 officially). Class names come from ``batches.meta``.

    ``normalize``: subtract the per-channel mean and divide by the standard deviation of the
    official training images (the published constants :data:`CIFAR10_MEAN`, :data:`CIFAR10_STD`),
    for every split, so evaluation sees what training saw; false gives pixels in ``[0, 1]``.
    ``download``: fetch the official archive into the cache when no copy is found (see the module
    docstring for where the files are looked for).
    """

    title = "CIFAR-10"
    folder = "cifar10"
    top = "cifar-10-batches-py"
    archive = "cifar-10-python.tar.gz"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    md5 = "c58f30108f718f92721af3b95e74349a"
    sha256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    split_files = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    meta_file = "batches.meta"
    label_keys = ("labels",)
    mean = CIFAR10_MEAN
    std = CIFAR10_STD

    def __init__(self, normalize: bool = True, download: bool = True):
        """``normalize``: per-channel standardization with the training set's statistics;
        ``download``: fetch the official archive into the cache when no copy is found."""
        super().__init__(download, normalize, "labels", "label_names", CIFAR10_CLASSES)

    def _label_counts(self) -> tuple[int, ...]:
        return (10,)

    def __repr__(self) -> str:
        return f"CIFAR10(normalize={self.normalize!r}, download={self.download!r})"


class CIFAR100(_CifarDataset):
    """CIFAR-100: 32x32x3 uint8 images, 50,000 for training (``train``) and the test images
    ``test`` holds (10,000 officially), labelled with 100 fine classes (``labels = "fine"``) or
    the 20 superclasses (``labels = "coarse"``). Class names come from ``meta``.

    ``normalize``: per-channel standardization with the published statistics of the official
    training images (:data:`CIFAR100_MEAN`, :data:`CIFAR100_STD`), for every split; false gives
    pixels in ``[0, 1]``. ``download``: fetch the official archive into the cache when no copy is
    found.
    """

    title = "CIFAR-100"
    folder = "cifar100"
    top = "cifar-100-python"
    archive = "cifar-100-python.tar.gz"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    sha256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
    split_files = {"train": ("train",), "test": ("test",)}
    meta_file = "meta"
    label_keys = ("fine_labels", "coarse_labels")
    mean = CIFAR100_MEAN
    std = CIFAR100_STD

    def __init__(self, labels: Literal["fine", "coarse"] = "fine", normalize: bool = True, download: bool = True):
        """``labels``: "fine" (100 classes) or "coarse" (20 superclasses); ``normalize``: per-channel
        standardization; ``download``: fetch the official archive into the cache when needed."""
        if labels not in ("fine", "coarse"):
            raise ValueError(f'labels must be "fine" (100 classes) or "coarse" (20 classes), got {labels!r}')
        self.labels = labels
        names = CIFAR100_FINE_CLASSES if labels == "fine" else CIFAR100_COARSE_CLASSES
        super().__init__(download, normalize, f"{labels}_labels", f"{labels}_label_names", names)

    def _label_counts(self) -> tuple[int, ...]:
        return (100, 20)

    def __repr__(self) -> str:
        return f"CIFAR100(labels={self.labels!r}, normalize={self.normalize!r}, download={self.download!r})"
