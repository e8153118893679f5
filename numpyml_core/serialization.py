"""Model files: safetensors weights (never pickled); metadata ``format`` (``numpyml-model``), ``format_version``,
``architecture`` (JSON) and ``numpyml_version``."""

from __future__ import annotations

import contextlib
import json
import math
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import UserError, nested_beyond
from .io import atomic_write_bytes

FORMAT = "numpyml-model"
FORMAT_VERSION = "1"
#: The longest JSON metadata value (a model's architecture, a checkpoint's state) read, in characters.
MAX_METADATA_JSON = 8 * 1024 * 1024
#: The deepest nesting accepted in JSON metadata (numpyml writes a handful of levels).
MAX_METADATA_DEPTH = 64
#: The most values per sample a model file's ``input_shape`` may declare (64 Mi: 4096x4096x4).
MAX_INPUT_VALUES = 1 << 26

def save_tensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write ``tensors`` and string ``metadata`` as a safetensors file, atomically."""
    from safetensors.numpy import save

    # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
    contiguous = {k: v if v.flags.c_contiguous else v.copy(order="C") for k, v in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=metadata))


@contextlib.contextmanager
def _open(path: str | Path) -> Iterator[Any]:
    """A ``safetensors.safe_open`` handle on ``path`` (which checks the header: every tensor fits in the
    file); any failure, while opening or reading, a :class:`UserError` naming the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            yield handle
    except FileNotFoundError:
        raise UserError(f"{path}: no such model file.") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        if Path(path).is_dir():
            raise UserError(f"{path}: is a directory, expected a .safetensors model file.") from None
        raise UserError(f"{path}: not a safetensors model file, or a damaged one ({exc}).") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (its header only is read)."""
    with _open(path) as handle:
        return handle.metadata() or {}


def load_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file."""
    with _open(path) as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def save_model(path: str | Path, model: Any, architecture: dict[str, Any]) -> None:
    """Write a model file: ``model``'s tensors, ``architecture`` as JSON metadata."""
    from . import __version__

    save_tensors(path, model.tensors(), {"format": FORMAT, "format_version": FORMAT_VERSION,
                                         "architecture": json.dumps(architecture), "numpyml_version": __version__})


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


def is_int(value: Any) -> bool:
    """An integer from JSON (``True`` and ``False`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def schema_check(path: str | Path, what: str, root: str, advice: str = "") -> Callable[..., None]:
    """``need(ok, where, value, expected)`` for a metadata schema: unless ``ok``, a :class:`UserError`
    naming ``path`` and the key path (``root`` then ``where``), what ``value`` is and what was expected."""
    def need(ok: Any, where: tuple[Any, ...], value: Any, expected: str) -> None:
        if not ok:
            raise UserError(f"{path}: malformed {what}: '{key_path((root, *where))}' is {describe(value)}, "
                            f"expected {expected}.{advice}")
    return need


def parse_metadata_json(meta: dict[str, str], key: str, path: str | Path, what: str) -> Any:
    """The JSON value of metadata ``key`` (``what`` names it); a :class:`UserError` naming ``path`` when it is
    missing, longer than :data:`MAX_METADATA_JSON`, not JSON, or nested deeper than :data:`MAX_METADATA_DEPTH`."""
    text = meta.get(key)
    if not isinstance(text, str):
        raise UserError(f"{path}: the file has no '{key}' metadata ({what}); it was not written by numpyml "
                        "or has been altered.")
    if len(text) > MAX_METADATA_JSON:
        raise UserError(f"{path}: the '{key}' metadata ({what}) is {len(text):,} characters long, more than the "
                        f"{MAX_METADATA_JSON:,} numpyml reads.")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path}: '{key}' ({what}) is not valid JSON, or nested too deep ({exc}).") from None
    deep = nested_beyond(value, MAX_METADATA_DEPTH)
    if deep is not None:
        where = (key, *deep)
        shown = key_path(where[:6]) + ("..." if len(where) > 6 else "")
        raise UserError(f"{path}: '{shown}' ({what}) is nested more than {MAX_METADATA_DEPTH} levels deep; "
                        "numpyml never writes such metadata.")
    return value


def validate_architecture(arch: Any, path: str | Path) -> dict[str, Any]:
    """Check the parsed ``architecture`` of a model file against its schema (``input_shape`` and ``layers``,
    optional ``cost``, ``num_classes``, ``class_names`` and ``dataset``); return it."""
    need = schema_check(path, "architecture metadata", "architecture")
    need(isinstance(arch, dict), (), arch, "an object with 'input_shape' and 'layers'")
    shape = arch.get("input_shape")
    need(isinstance(shape, list) and shape and all(is_int(d) and d >= 1 for d in shape), ("input_shape",), shape,
         "a non-empty list of positive integers (the per-sample input shape)")
    need(math.prod(shape) <= MAX_INPUT_VALUES, ("input_shape",), shape,
         f"at most {MAX_INPUT_VALUES:,} values per sample")
    layers = arch.get("layers")
    need(isinstance(layers, list) and layers, ("layers",), layers, "a non-empty list of layer tables")
    for index, table in enumerate(layers):
        need(isinstance(table, dict), ("layers", index), table, "a layer table (an object with a 'type')")
        kind = table.get("type")
        need(isinstance(kind, str) and kind, ("layers", index, "type"), kind, "a layer name (a string)")
    cost, classes, names, dataset = (arch.get(key) for key in ("cost", "num_classes", "class_names", "dataset"))
    need(cost is None or (isinstance(cost, dict) and isinstance(cost.get("type"), str) and cost["type"]), ("cost",),
         cost, "a cost table (an object with a string 'type')")
    need(classes is None or (is_int(classes) and classes >= 1), ("num_classes",), classes, "a positive integer")
    need(names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names)), ("class_names",),
         names, "a list of strings")
    need(dataset is None or isinstance(dataset, str), ("dataset",), dataset, "a dataset name (a string)")
    return arch


def read_architecture(path: str | Path) -> dict[str, Any]:
    """The validated ``architecture`` of a model file (see :func:`validate_architecture`)."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a numpyml model file (its metadata has no 'format = {FORMAT}'); "
                        "expected the model.safetensors written by 'numpyml run'.")
    return validate_architecture(parse_metadata_json(meta, "architecture", path, "the network's architecture"), path)


def refuse_non_finite(tensors: dict[str, np.ndarray], path: str | Path, what: str = "parameters") -> None:
    """A :class:`UserError` naming ``path`` and the first tensor holding NaN or infinite values."""
    for name, array in tensors.items():
        bad = int(array.size - np.count_nonzero(np.isfinite(array))) if np.issubdtype(array.dtype, np.inexact) else 0
        if bad:
            raise UserError(f"{path}: holds non-finite {what}: '{name}' has {bad:,} NaN or infinite value"
                            f"{'s' if bad != 1 else ''} (of {array.size:,}); the file is damaged or was saved from "
                            "a diverged run, and cannot be used.")


# While load_model builds a network, the most values a parameter may hold (the largest stored tensor).
_LOADING_BUDGET: ContextVar[int | None] = ContextVar("numpyml_loading_budget", default=None)


class ParameterTooLarge(Exception):
    """A parameter (``args[0]``: its shape) larger than any tensor of the model file being loaded."""


def loading_placeholder(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray | None:
    """For initializers, to call first: ``None`` normally (draw as usual); while :func:`load_model` builds a
    network, an all-zero array of ``shape`` (the stored weights overwrite it), or :class:`ParameterTooLarge`
    before allocating anything when ``shape`` is larger than the file's largest tensor."""
    budget = _LOADING_BUDGET.get()
    if budget is None:
        return None
    if math.prod(int(d) for d in shape) > budget:
        raise ParameterTooLarge(tuple(int(d) for d in shape))
    return np.zeros(shape, dtype=dtype)


def load_model(path: str | Path, manager: Any = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network of a model file and load its weights; every mismatch is a :class:`UserError`
    naming the file and the tensor. A hostile file costs no more memory than it holds: each layer is built
    with placeholders (:func:`loading_placeholder`) and compared with the stored tensors before the next."""
    from .errors import ConfigError
    from .model import Model
    from .plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    arch = read_architecture(path)
    with _open(path) as handle:  # {name: shape}, from the header only
        stored = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    configs = list(arch["layers"])
    layers = []
    for index, table in enumerate(configs):
        try:
            layers.append(manager.create("layer", table["type"], **{k: v for k, v in table.items() if k != "type"}))
        except ConfigError as exc:
            raise UserError(f"{path}: layer #{index + 1}: {exc}") from None
    model = Model(layers, configs)
    built: list[int] = []

    def after_layer(index: int, layer: Any) -> None:  # each layer is compared before the next is built
        arrays = {**(getattr(layer, "params", None) or {}), **(getattr(layer, "state", None) or {})}
        for name, array in arrays.items():
            key = f"{index}.{name}"
            if stored.get(key) != tuple(array.shape):
                found = f"is stored with shape {stored[key]}" if key in stored else "is not in the file"
                raise UserError(f"{path}: layer #{index + 1} ({configs[index]['type']}): '{key}' {found}, the "
                                f"architecture needs {tuple(array.shape)}; the metadata does not match the weights.")
        built.append(index)

    token = _LOADING_BUDGET.set(max(map(math.prod, stored.values()), default=0))
    try:
        model.build(tuple(arch["input_shape"]), np.random.default_rng(0), after_layer=after_layer)
        tensors = load_tensors(path)
        refuse_non_finite(tensors, path)
        model.load_tensors(tensors)
    except ParameterTooLarge as exc:
        index = len(built)
        own = [f"'{name}' {shape}" for name, shape in stored.items() if name.startswith(f"{index}.")]
        raise UserError(
            f"{path}: layer #{index + 1} ({configs[index]['type']}) would need a parameter of shape {exc.args[0]}, "
            f"larger than any tensor the file holds (it stores {', '.join(own) or 'nothing'} for this layer); "
            "the architecture metadata does not match the weights.") from None
    except ValueError as exc:
        raise UserError(f"{path}: {exc}.") from None
    finally:
        _LOADING_BUDGET.reset(token)
    return model, arch
