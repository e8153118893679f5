"""``image_folder``: PNG/JPEG images sorted into one folder per class (Keras's
``image_dataset_from_directory`` layout), read with Pillow (``pip install 'numpyml[image]'``).

The images are decoded once per process and kept in memory as one uint8 array per split (nothing is
written next to the user's files). Before any pixel is decoded, the number of images times the image
size must fit :data:`numpyml_datasets._files.MAX_DATA_BYTES`, and every image's header is checked
against a pixel limit, so a folder (or a "decompression bomb" PNG) cannot claim more memory than it may.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from numpyml_core import MissingExtra, UserError
from numpyml_core.plugin_api import ArraySplit

from . import _files

#: The most pixels one image may have before resizing (64 Mpixels, a 8000 x 8000 photo).
MAX_IMAGE_PIXELS = 1 << 26


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtra(
            "the image_folder dataset reads images with Pillow, which is not installed. It is an optional "
            "dependency of numpyml: install it with `pip install 'numpyml[image]'` (or `uv sync --extra image` "
            "in this project), then run the command again."
        ) from None
    return Image


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


class ImageFolder:
    """A dataset of image files, one sub-folder per class.

    * ``path``: a folder holding ``train/<class>/*`` and optionally ``test/<class>/*``; or, without a
      ``train`` sub-folder, ``<class>/*`` directly (then there is no test split: hold images out with
      ``[dataset] validation = N``). Absolute, relative to the current folder, or relative to
      ``--data-dir`` / ``NUMPYML_DATA_DIR``.
    * Class names are the training class folders' names, sorted (label 0 is the first); the test split
      may lack a class but not add one. Every visible file in a class folder must be an image Pillow
      reads (PNG, JPEG, ...); hidden files (``.name``) are skipped.
    * ``image_size``: ``[height, width]`` every image is resized to (bilinear); default: the size of
      the first image, which every image must then have.
    * ``color``: ``"grayscale"`` (1 channel) or ``"rgb"`` (3 channels).
    * ``seed``: the training images are shuffled with it once (so ``validation = N``, the last N,
      holds every class); the test images keep folder order.
    * ``normalize``: standardize every split per channel with ``mean``/``std`` (fractions of 255) if
      given, else with the training images' statistics.

    Images are uint8 ``(N, H, W, C)``, scaled to [0, 1] batch by batch.
    """

    title = "image_folder"

    def __init__(self, path: str, image_size: list[int] | None = None,
                 color: Literal["grayscale", "rgb"] = "rgb", seed: int = 0, normalize: bool = False,
                 mean: list[float] | None = None, std: list[float] | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError(f"path must name a folder, got {path!r}")
        if image_size is not None:
            size = list(image_size) if isinstance(image_size, (list, tuple)) else None
            if (size is None or len(size) != 2
                    or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096 for v in size)):
                raise ValueError(f"image_size must be [height, width], two integers from 1 to 4096, got {image_size!r}")
            image_size = size
        if color not in ("grayscale", "rgb"):
            raise ValueError(f'color must be "grayscale" or "rgb", got {color!r}')
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        _files.check_normalization(normalize, mean, std)
        self.path = str(path)
        self.image_size = None if image_size is None else tuple(image_size)
        self.color, self.seed = color, seed
        self.normalize, self.mean, self.std = bool(normalize), mean, std
        self._data_dir: str | os.PathLike | None = None

    def __repr__(self) -> str:
        return f"ImageFolder(path={self.path!r}, image_size={self.image_size!r}, color={self.color!r})"

    @property
    def channels(self) -> int:
        return 1 if self.color == "grayscale" else 3

    # -- the folder's layout (no image opened) -------------------------------------------------------
    def _layout(self) -> tuple[list[str], dict[str, list[tuple[Path, int]]], dict[str, Path]]:
        """Class names, and per split the (file, label) pairs in folder order."""
        root = _files.resolve_path(self.path, "folder", self.title, self._data_dir, directory=True)
        nested = (root / "train").is_dir()  # train/<class>/..., else <class>/... directly
        split_dirs = {"train": root / "train"} if nested else {"train": root}
        if nested and (root / "test").is_dir():
            split_dirs["test"] = root / "test"
        try:
            classes = [p.name for p in _visible(split_dirs["train"]) if p.is_dir()]
            if not classes:
                raise UserError(
                    f"{self.title} dataset: {split_dirs['train']} holds no class folders; expected "
                    f"{root}/train/<class>/<image files> (and optionally {root}/test/<class>/...), or "
                    f"{root}/<class>/<image files>.")
            files: dict[str, list[tuple[Path, int]]] = {}
            for split, folder in split_dirs.items():
                pairs = []
                for entry in _visible(folder):
                    if not entry.is_dir():
                        raise UserError(f"{self.title} dataset: {entry} is a file directly in {folder}; expected only "
                                        "class folders there (put each image in the folder of its class).")
                    if entry.name not in classes:
                        raise UserError(f"{self.title} dataset: {entry} is a class the training folder "
                                        f"{split_dirs['train']} does not have (its classes are "
                                        f"{', '.join(classes)}).")
                    label = classes.index(entry.name)
                    for item in _visible(entry):
                        if item.is_dir():
                            raise UserError(f"{self.title} dataset: {item} is a folder inside class folder {entry}; "
                                            "expected only image files there.")
                        pairs.append((item, label))
                files[split] = pairs
        except OSError as exc:
            raise UserError(f"{self.title} dataset: cannot read {exc.filename}: {exc.strerror or exc}.") from None
        return classes, files, split_dirs

    @property
    def class_names(self) -> list[str]:
        return self._layout()[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def split_sizes(self) -> dict[str, int]:
        return {split: len(pairs) for split, pairs in self._layout()[1].items()}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        if self.image_size is not None:
            return (*self.image_size, self.channels)  # type: ignore[return-value]
        _, files, split_dirs = self._layout()
        if not files["train"]:
            raise UserError(f"{self.title} dataset: {split_dirs['train']} holds class folders but no images.")
        width, height = self._open(files["train"][0][0], header_only=True)
        return (height, width, self.channels)

    # -- decoding ------------------------------------------------------------------------------------
    def _open(self, path: Path, header_only: bool = False, size: tuple[int, int] | None = None) -> Any:
        Image = _pillow()
        from PIL import UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    width, height = image.size
                    if width * height > MAX_IMAGE_PIXELS:
                        raise UserError(f"{path}: an image of {width} x {height} pixels, more than the limit of "
                                        f"{MAX_IMAGE_PIXELS:,} (numpyml_datasets.imagefolder.MAX_IMAGE_PIXELS).")
                    if header_only:
                        return width, height
                    image = image.convert("L" if self.color == "grayscale" else "RGB")
                    if size is not None and (height, width) != size:
                        if self.image_size is None:
                            raise UserError(
                                f"{path}: the image is {height} x {width} (height x width) but the first training "
                                f"image is {size[0]} x {size[1]}; give image_size = [height, width] in the [dataset] "
                                "table to resize every image to one size.")
                        image = image.resize((size[1], size[0]), Image.BILINEAR)
                    array = np.asarray(image, dtype=np.uint8)
        except UserError:
            raise
        except UnidentifiedImageError:
            raise UserError(f"{path} is not an image Pillow can read; expected only PNG/JPEG (or other image) files "
                            "in the class folders. Remove or move it.") from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UserError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc}); it is truncated or "
                            "corrupt. Replace or remove it.") from None
        return array.reshape(array.shape[0], array.shape[1], -1)

    def _decode(self, pairs: list[tuple[Path, int]], shape: tuple[int, int, int], where: Path) -> tuple[np.ndarray, np.ndarray]:
        _files.check_size(where, (len(pairs), *shape), 1, "the decoded images")
        x = np.empty((len(pairs), *shape), dtype=np.uint8)
        for i, (path, _) in enumerate(pairs):
            x[i] = self._open(path, size=shape[:2])
        return x, np.array([label for _, label in pairs], dtype=np.int64)

    def _decoded(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        _, files, split_dirs = self._layout()
        # the key changes with any file added, removed or rewritten (names, sizes and times)
        stamp = tuple((split, tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p, _ in pairs))
                      for split, pairs in files.items())
        key = ("image_folder", stamp, self.image_size, self.color, self.seed)

        def decode() -> dict[str, tuple[np.ndarray, np.ndarray]]:
            shape = self.input_shape
            arrays = {}
            for split, pairs in files.items():
                if split == "train":
                    order = np.random.default_rng(self.seed).permutation(len(pairs))
                    pairs = [pairs[i] for i in order]
                arrays[split] = self._decode(pairs, shape, split_dirs[split])
            return arrays

        return _files.cached(key, decode)

    def load(self, data_dir: str | None = None) -> dict[str, ArraySplit]:
        """``{"train": ..., "test": ...}`` (``test`` when there is a test folder): uint8 images."""
        self._data_dir = data_dir
        arrays = self._decoded()
        _, _, split_dirs = self._layout()
        return _files.make_splits(self.title, arrays, {s: str(d) for s, d in split_dirs.items()}, self.normalize,
                                  self.mean, self.std)
