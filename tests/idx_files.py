"""Write small IDX files (the MNIST format) for tests, gzip-compressed or raw."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array: magic (type 0x08, ndim), big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = magic.to_bytes(4, "big") + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool | None = None, magic: int | None = None) -> Path:
    """Write ``array`` as IDX to ``path``; gzip it when ``compress`` (default: name ends in .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array, magic)
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def make_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 28x28 uint8 images and labels 0..9 (every class present when n >= 10)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    return images, labels


def write_dataset(folder: Path, n_train: int = 12, n_test: int = 5, *, compress: bool = True, seed: int = 0) -> dict:
    """The four official files in ``folder`` (``.gz`` names when ``compress``); returns
    ``{"train": (images, labels), "test": (images, labels)}``."""
    folder = Path(folder)
    suffix = ".gz" if compress else ""
    arrays = {}
    for i, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        images, labels = make_split(n, seed + i)
        images_name, labels_name = SPLIT_FILES[split]
        write_idx(folder / f"{images_name}{suffix}", images, compress=compress)
        write_idx(folder / f"{labels_name}{suffix}", labels, compress=compress)
        arrays[split] = (images, labels)
    return arrays
