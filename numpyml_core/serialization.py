"""Model files: safetensors weights with the architecture as JSON in the header metadata.

Weights are never pickled: opening a model file can never run code. Files are written atomically.
Header metadata keys (all strings, as safetensors requires):

* ``format``: ``"numpyml-model"``; ``format_version``: ``"1"``
* ``architecture``: JSON ``{"input_shape": [...], "layers": [{"type": ..., **params}, ...],
  "num_classes": int, "class_names": [...]}``
* ``numpyml_version``, ``plugins``: JSON ``{distribution: version}``
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import UserError, nested_beyond
from .io import atomic_write_bytes

FORMAT = "numpyml-model"
FORMAT_VERSION = "1"
_MAX_HEADER = 100 * 1024 * 1024
#: The longest JSON metadata value (a model's architecture, a checkpoint's state) read, in characters.
MAX_METADATA_JSON = 8 * 1024 * 1024
#: The deepest nesting accepted in JSON metadata (numpyml writes a handful of levels).
MAX_METADATA_DEPTH = 64
#: The most values per sample a model file's ``input_shape`` may declare (64 Mi: 4096x4096x4).
MAX_INPUT_VALUES = 1 << 26
#: safetensors dtype codes -> NumPy dtype names
_DTYPES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16", "U32": "uint32",
           "I32": "int32", "U64": "uint64", "I64": "int64", "F16": "float16", "BF16": "bfloat16",
           "F32": "float32", "F64": "float64"}


def save_tensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write ``tensors`` and string ``metadata`` as a safetensors file, atomically."""
    from safetensors.numpy import save

    # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
    contiguous = {k: v if v.flags.c_contiguous else v.copy(order="C") for k, v in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=metadata))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its JSON header only."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise UserError(f"{path}: not a safetensors model file (too short: {len(head)} bytes).")
            (length,) = struct.unpack("<Q", head)
            if length > _MAX_HEADER:
                raise UserError(f"{path}: not a safetensors model file (header length {length} is implausible).")
            raw = handle.read(length)
    except FileNotFoundError:
        raise UserError(f"{path}: no such model file.") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a .safetensors model file.") from None
    if len(raw) < length:
        raise UserError(f"{path}: truncated safetensors file (header cut short).")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{path}: not a safetensors model file (its header is not JSON, or nested too deep).") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: not a safetensors model file (unexpected header).")
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def read_tensor_index(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, NumPy dtype name)}`` of every tensor of a safetensors file, from its header
    only (no tensor data is read). The header is checked by the ``safetensors`` library itself:
    every declared shape fits in the bytes the file holds."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            index = {}
            for name in handle.keys():
                tensor = handle.get_slice(name)
                index[name] = (tuple(int(d) for d in tensor.get_shape()), tensor.get_dtype())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file.") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise UserError(f"{path}: cannot read the tensors ({exc}); the file is corrupt or truncated.") from None
    return {name: (shape, _DTYPES.get(code, code.lower())) for name, (shape, code) in index.items()}


def load_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file (read whole: memory is the file's size)."""
    from safetensors.numpy import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file.") from None
    try:
        return load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise UserError(f"{path}: cannot read the tensors ({exc}); the file is corrupt or truncated.") from None


def save_model(path: str | Path, model: Any, architecture: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    from . import __version__

    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(architecture),
        "numpyml_version": __version__,
        **(extra or {}),
    }
    save_tensors(path, model.tensors(), metadata)


def key_path(parts: list[Any] | tuple[Any, ...]) -> str:
    """``["architecture", "layers", 1, "type"]`` as ``architecture.layers[1].type``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def describe(value: Any) -> str:
    """A short description of a JSON value for messages: its type and (shortened) value."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return f"{kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    text = repr(value)
    return f"{kind} ({text if len(text) <= 40 else text[:37] + '...'})"


def parse_metadata_json(meta: dict[str, str], key: str, path: str | Path, what: str) -> Any:
    """The JSON value of metadata ``key`` (``what`` names it in messages): a :class:`UserError` naming
    ``path`` when it is missing, longer than :data:`MAX_METADATA_JSON` characters, not JSON, or nested
    deeper than :data:`MAX_METADATA_DEPTH`."""
    text = meta.get(key)
    if not isinstance(text, str):
        raise UserError(f"{path}: the file has no '{key}' metadata ({what}); it was not written by numpyml "
                        "or has been altered.")
    if len(text) > MAX_METADATA_JSON:
        raise UserError(f"{path}: the '{key}' metadata ({what}) is {len(text):,} characters long, more than the "
                        f"{MAX_METADATA_JSON:,} numpyml reads.")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UserError(f"{path}: '{key}' ({what}) is JSON nested too deep (numpyml writes at most "
                        f"{MAX_METADATA_DEPTH} levels).") from None
    except ValueError as exc:
        raise UserError(f"{path}: '{key}' ({what}) is not valid JSON ({exc}).") from None
    # iterative: the value may be nested up to the interpreter's recursion limit
    deep = nested_beyond(value, MAX_METADATA_DEPTH)
    if deep is not None:
        where = (key, *deep)
        shown = key_path(where[:6]) + ("..." if len(where) > 6 else "")
        raise UserError(f"{path}: '{shown}' ({what}) is nested more than {MAX_METADATA_DEPTH} levels deep; "
                        "numpyml never writes such metadata.")
    return value


def is_int(value: Any) -> bool:
    """An integer from JSON (``True`` and ``False`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def validate_architecture(arch: Any, path: str | Path) -> dict[str, Any]:
    """Check the parsed ``architecture`` metadata of a model file against its schema; return it.

    Schema: an object with ``input_shape`` (a non-empty list of positive integers, at most
    :data:`MAX_INPUT_VALUES` values per sample), ``layers`` (a non-empty list of objects, each with a
    string ``type``), and optional ``cost`` (an object with a string ``type``), ``num_classes`` (a
    positive integer), ``class_names`` (a list of strings) and ``dataset`` (a string). Anything else
    is a :class:`UserError` naming the file and the key path (``architecture.layers[1].type``).
    """
    def fail(where: tuple[Any, ...], value: Any, expected: str) -> None:
        raise UserError(f"{path}: malformed architecture metadata: '{key_path(('architecture', *where))}' is "
                        f"{describe(value)}, expected {expected}.")

    if not isinstance(arch, dict):
        fail((), arch, "an object with 'input_shape' and 'layers'")
    shape = arch.get("input_shape")
    if not (isinstance(shape, list) and shape and all(is_int(d) and d >= 1 for d in shape)):
        fail(("input_shape",), shape, "a non-empty list of positive integers (the per-sample input shape)")
    if math.prod(shape) > MAX_INPUT_VALUES:
        fail(("input_shape",), shape, f"at most {MAX_INPUT_VALUES:,} values per sample")
    layers = arch.get("layers")
    if not (isinstance(layers, list) and layers):
        fail(("layers",), layers, "a non-empty list of layer tables")
    for index, table in enumerate(layers):
        if not isinstance(table, dict):
            fail(("layers", index), table, "a layer table (an object with a 'type')")
        if not (isinstance(table.get("type"), str) and table["type"]):
            fail(("layers", index, "type"), table.get("type"), "a layer name (a string)")
    cost = arch.get("cost")
    if cost is not None and not (isinstance(cost, dict) and isinstance(cost.get("type"), str) and cost["type"]):
        fail(("cost",), cost, "a cost table (an object with a string 'type')")
    classes = arch.get("num_classes")
    if classes is not None and not (is_int(classes) and classes >= 1):
        fail(("num_classes",), classes, "a positive integer")
    names = arch.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        fail(("class_names",), names, "a list of strings")
    dataset = arch.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        fail(("dataset",), dataset, "a dataset name (a string)")
    return arch


def read_architecture(path: str | Path) -> dict[str, Any]:
    """The validated ``architecture`` of a model file (see :func:`validate_architecture`)."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise UserError(
            f"{path}: not a numpyml model file (its metadata has no 'format = {FORMAT}'); "
            "expected the model.safetensors written by 'numpyml run'."
        )
    return validate_architecture(parse_metadata_json(meta, "architecture", path, "the network's architecture"), path)


def check_finite(tensors: dict[str, np.ndarray], path: str | Path, what: str = "parameters") -> None:
    """A :class:`UserError` naming ``path`` and the first tensor holding NaN or infinite values."""
    for name, array in tensors.items():
        if np.issubdtype(array.dtype, np.inexact):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                raise UserError(
                    f"{path}: holds non-finite {what}: '{name}' has {bad:,} NaN or infinite value"
                    f"{'s' if bad != 1 else ''} (of {array.size:,}); the file is damaged or was saved from a "
                    "diverged run, and cannot be used."
                )


# -- loading a network whose weights will be overwritten -----------------------------------------
_LOADING_BUDGET: ContextVar[int | None] = ContextVar("numpyml_loading_budget", default=None)


class ParameterTooLarge(Exception):
    """Raised by an initializer that, while :func:`load_model` builds a network, is asked for a
    parameter with more values than any tensor of the model file (so it cannot match one)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(int(d) for d in shape)
        super().__init__(f"a parameter of shape {self.shape} is larger than any tensor in the model file")


@contextlib.contextmanager
def loading_weights(max_values: int) -> Iterator[None]:
    """While the block runs, initializers make placeholders (see :func:`loading_placeholder`) of at
    most ``max_values`` values: the network being built gets its weights from a file."""
    token = _LOADING_BUDGET.set(int(max_values))
    try:
        yield
    finally:
        _LOADING_BUDGET.reset(token)


def loading_placeholder(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray | None:
    """For initializers, to call first. ``None`` normally (draw as usual). While a model file is
    loaded (:func:`loading_weights`): an all-zero array of ``shape`` (no random draw: the stored
    weights overwrite it; its pages are not touched until they do), or :class:`ParameterTooLarge`
    before allocating anything when ``shape`` holds more values than the file's largest tensor.
    So a file claiming a huge network costs no more memory than the file holds."""
    budget = _LOADING_BUDGET.get()
    if budget is None:
        return None
    if math.prod(int(d) for d in shape) > budget:
        raise ParameterTooLarge(shape)
    return np.zeros(shape, dtype=dtype)


class _Mismatch(Exception):
    """A built layer's arrays disagree with the tensors the model file holds."""


def _layer_checker(path: str | Path, stored: dict[str, tuple[tuple[int, ...], str]],
                   configs: list[dict[str, Any]]) -> Callable[[int, Any], None]:
    """A ``Model.build`` ``after_layer`` callback comparing each built layer's parameters and state
    (names, shapes, dtypes) with the file's tensors, before the next layer is built."""
    def check(index: int, layer: Any) -> None:
        kind = configs[index].get("type")
        arrays = {**(getattr(layer, "params", None) or {}), **(getattr(layer, "state", None) or {})}
        for name, array in arrays.items():
            key = f"{index}.{name}"
            if key not in stored:
                raise _Mismatch(f"layer #{index + 1} ({kind}) has a parameter '{key}' of shape {array.shape} that "
                                "the file does not hold; the architecture metadata does not match the weights")
            shape, dtype = stored[key]
            if shape != tuple(array.shape):
                raise _Mismatch(f"layer #{index + 1} ({kind}): '{key}' is stored with shape {shape}, the "
                                f"architecture needs {tuple(array.shape)}")
            if dtype != np.dtype(array.dtype).name:
                raise _Mismatch(f"'{key}' is stored as {dtype}, the network needs {np.dtype(array.dtype).name}; "
                                "numpyml refuses a tensor of another type rather than converting it silently")
    return check


def load_model(path: str | Path, manager: Any = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network described in a model file and load its weights.

    In this order, so that a hostile file costs no more memory than it holds: the architecture is
    checked against its schema; the tensors' names, shapes and dtypes are read from the header; the
    network is built layer by layer with zero placeholders no larger than the largest stored tensor
    (:func:`loading_weights`), each layer compared with the stored tensors before the next is built;
    then the tensors are read, refused when not finite, and copied in. Every mismatch is a
    :class:`UserError` naming the file and the tensor.
    """
    from .errors import ConfigError
    from .model import Model
    from .plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    arch = read_architecture(path)
    stored = read_tensor_index(path)
    layers = []
    configs = []
    for index, table in enumerate(arch["layers"]):
        params = {k: v for k, v in table.items() if k != "type"}
        try:
            layers.append(manager.create("layer", table["type"], **params))
        except ConfigError as exc:
            raise UserError(f"{path}: layer #{index + 1}: {exc}") from None
        configs.append(table)
    model = Model(layers, configs)
    built: list[int] = []
    checker = _layer_checker(path, stored, configs)

    def after_layer(index: int, layer: Any) -> None:
        checker(index, layer)
        built.append(index)

    largest = max((math.prod(shape) for shape, _ in stored.values()), default=0)
    try:
        with loading_weights(largest):
            model.build(tuple(arch["input_shape"]), np.random.default_rng(0), after_layer=after_layer)
    except ParameterTooLarge as exc:
        index = len(built)
        own = [f"'{name}' {shape}" for name, (shape, _) in stored.items() if name.startswith(f"{index}.")]
        raise UserError(
            f"{path}: layer #{index + 1} ({configs[index]['type']}) would need a parameter of shape {exc.shape}, "
            f"larger than any tensor the file holds (it stores {', '.join(own) or 'nothing'} for this layer); "
            "the architecture metadata does not match the weights."
        ) from None
    except _Mismatch as exc:
        raise UserError(f"{path}: {exc}.") from None
    except ValueError as exc:
        raise UserError(f"{path}: {exc}.") from None
    tensors = load_tensors(path)
    check_finite(tensors, path)
    try:
        model.load_tensors(tensors)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}.") from None
    return model, arch
