"""What the user-file datasets (``npz``, ``csv``, ``image_folder``) share: finding the file the user
named, the per-process cache of parsed arrays, labels turned into classes, normalization, and the checks
every built-in dataset makes (no empty split, labels in range, inputs and labels of equal length).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from numpyml_core import UserError
from numpyml_core import plugin_api
from numpyml_core.plugin_api import ArraySplit

#: Parsed files of this process: (kind, resolved path, size, mtime, options) -> result.
_CACHE: dict[tuple, Any] = {}

#: The most bytes a dataset of these kinds may hold in memory once decoded (4 GiB): a file (or a
#: folder of images) declaring more is refused before anything is allocated.
MAX_DATA_BYTES = 4 << 30


def clear_cache() -> None:
    """Forget every file parsed so far in this process."""
    _CACHE.clear()


def cache_key(kind: str, path: Path, *options: Any) -> tuple:
    stat = path.stat()
    return (kind, str(path.resolve()), stat.st_size, stat.st_mtime_ns, options)


def cached(key: tuple, make: Any) -> Any:
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def resolve_path(path: str | os.PathLike, what: str, title: str, data_dir: str | os.PathLike | None = None,
                 directory: bool = False) -> Path:
    """The file (or folder) ``path`` names: as given (absolute, or relative to the current folder),
    else relative to ``data_dir`` (the CLI's ``--data-dir``) or ``NUMPYML_DATA_DIR``."""
    given = Path(path).expanduser()
    candidates = [given]
    root = data_dir if data_dir is not None else plugin_api.data_dir_from_env()
    if root is not None and not given.is_absolute():
        candidates.append(Path(root).expanduser() / given)
    for candidate in candidates:
        if (candidate.is_dir() if directory else candidate.is_file()):
            return candidate
    kind = "folder" if directory else "file"
    tried = ", ".join(str(c) for c in candidates)
    wrong = next((c for c in candidates if c.exists()), None)
    extra = f" ({wrong} exists but is not a {kind})" if wrong is not None else ""
    raise UserError(
        f"{title} dataset: {what} {str(path)!r} not found{extra}; tried {tried}. Give 'path' in the [dataset] "
        f"table as an absolute path, a path relative to the current folder, or one relative to --data-dir / "
        "NUMPYML_DATA_DIR."
    )


def check_size(source: Path | str, shape: tuple[int, ...], itemsize: int, what: str) -> None:
    """Refuse a declared array larger than :data:`MAX_DATA_BYTES` before allocating it."""
    size = itemsize
    for d in shape:
        size *= int(d)
    if size > MAX_DATA_BYTES:
        raise UserError(
            f"{source}: {what} of shape {tuple(int(d) for d in shape)} would take {size:,} bytes, more than the "
            f"limit of {MAX_DATA_BYTES:,} bytes (numpyml_datasets._files.MAX_DATA_BYTES). Use a smaller file."
        )


def integer_labels(source: str, labels: np.ndarray, num_classes: int | None) -> np.ndarray:
    """Integer labels checked to lie in ``0..num_classes-1`` (``num_classes`` ``None``: any
    non-negative label), as int64."""
    if labels.dtype.kind == "f":
        if labels.size and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            bad = int(np.flatnonzero(~(np.isfinite(labels) & (labels == np.round(labels))))[0])
            raise UserError(f"{source}: label {labels[bad]!r} at index {bad} is not a whole number; labels must be "
                            "class indices 0, 1, 2, ...")
    elif labels.dtype.kind not in "iub":
        raise UserError(f"{source}: labels are of type {labels.dtype}, expected integers (class indices 0, 1, 2, ...).")
    if labels.size:
        low, high = labels.min(), labels.max()
        top = (num_classes - 1) if num_classes is not None else None
        if low < 0 or (top is not None and high > top):
            bad = int(np.flatnonzero((labels < 0) | ((labels > top) if top is not None else False))[0])
            expected = f"0..{top}" if top is not None else "0 or more"
            raise UserError(f"{source}: label {labels[bad]} at index {bad} is out of range {expected} "
                            f"(num_classes = {num_classes}).")
        if high > 1 << 31:
            raise UserError(f"{source}: label {high} is too large to be a class index.")
    return labels.astype(np.int64)


def check_class_names(title: str, class_names: list[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise UserError(f"{title} dataset: class_names lists {len(class_names)} names but the data has "
                        f"{num_classes} classes; give one name per class, in label order.")
    return [str(name) for name in class_names]


def check_normalization(normalize: bool, mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
    """Constructor checks (``ValueError``, reported by the config as the parameter's error)."""
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither (normalize = true computes them from the training split)")
    if mean is not None and not normalize:
        raise ValueError("mean and std are only used with normalize = true")
    if std is not None and not all(float(s) > 0 for s in std):
        raise ValueError(f"std must be greater than 0, got {list(std)}")


def make_splits(title: str, arrays: dict[str, tuple[np.ndarray, np.ndarray]], sources: dict[str, str],
                normalize: bool, mean: Sequence[float] | None, std: Sequence[float] | None) -> dict[str, ArraySplit]:
    """``{"train": ArraySplit, "test": ...}`` after the checks every dataset makes. With ``normalize``,
    every split is standardized per channel (the last axis) with ``mean``/``std``, or else with the
    training split's statistics (in the units of the batches: uint8 pixels as fractions of 255)."""
    for name, (x, y) in arrays.items():
        if len(x) == 0:
            raise UserError(f"{title} dataset, {name} split: {sources[name]} holds no samples (an empty split cannot "
                            f"be {'trained on' if name == 'train' else 'evaluated'}).")
        if len(x) != len(y):
            raise UserError(f"{title} dataset, {name} split: {sources[name]} holds {len(x)} inputs but {len(y)} "
                            "labels; there must be one label per input.")
    kwargs: dict[str, Any] = {}
    if normalize:
        if mean is None:
            mean, std = channel_statistics(arrays["train"][0])
        kwargs = {"mean": list(mean), "std": list(std)}
    try:
        return {name: ArraySplit(x, y, **kwargs) for name, (x, y) in arrays.items()}
    except ValueError as exc:
        raise UserError(f"{title} dataset: normalization: {exc}.") from None


def channel_statistics(x: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel (last axis) mean and standard deviation of ``x`` in batch units (uint8 / 255),
    accumulated a chunk of samples at a time in float64; a zero deviation becomes 1."""
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    channels = x.shape[-1] if x.ndim > 1 else 1
    total = np.zeros(channels)
    squares = np.zeros(channels)
    count = 0
    for start in range(0, len(x), chunk):
        part = np.asarray(x[start:start + chunk], dtype=np.float64).reshape(-1, channels) * scale
        total += part.sum(axis=0)
        squares += np.einsum("ij,ij->j", part, part)
        count += len(part)
    mean = total / max(count, 1)
    var = np.maximum(squares / max(count, 1) - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std == 0] = 1.0
    return mean.tolist(), std.tolist()
