"""Model files: safetensors weights with the architecture as JSON in the header metadata.

Weights are never pickled: opening a model file can never run code. Files are written atomically.
Header metadata keys (all strings, as safetensors requires):

* ``format``: ``"numpyml-model"``; ``format_version``: ``"1"``
* ``architecture``: JSON ``{"input_shape": [...], "layers": [{"type": ..., **params}, ...],
  "num_classes": int, "class_names": [...]}``
* ``numpyml_version``, ``plugins``: JSON ``{distribution: version}``
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .io import atomic_write_bytes

FORMAT = "numpyml-model"
FORMAT_VERSION = "1"
_MAX_HEADER = 100 * 1024 * 1024


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
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: not a safetensors model file (its header is not JSON).") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: not a safetensors model file (unexpected header).")
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def load_tensors(path: str | Path) -> dict[str, np.ndarray]:
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


def read_architecture(path: str | Path) -> dict[str, Any]:
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise UserError(
            f"{path}: not a numpyml model file (its metadata has no 'format = {FORMAT}'); "
            "expected the model.safetensors written by 'numpyml run'."
        )
    try:
        arch = json.loads(meta["architecture"])
        arch["layers"], arch["input_shape"]  # noqa: B018 - presence check
    except (KeyError, TypeError, json.JSONDecodeError):
        raise UserError(f"{path}: the model's architecture metadata is missing or malformed.") from None
    return arch


def load_model(path: str | Path, manager: Any = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the network described in a model file and load its weights."""
    from .errors import ConfigError
    from .model import Model
    from .plugins import get_plugin_manager

    manager = manager or get_plugin_manager()
    arch = read_architecture(path)
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
    try:
        model.build(tuple(arch["input_shape"]), np.random.default_rng(0))
        model.load_tensors(load_tensors(path))
    except ValueError as exc:
        raise UserError(f"{path}: {exc}.") from None
    return model, arch
