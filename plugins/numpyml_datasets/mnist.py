"""MNIST and Fashion-MNIST: 28x28 grey images in 10 classes, 60,000 for training, 10,000 for test.

Both ship as four IDX files with the same official names, looked for (each file on its own) in:

1. ``<data_dir>/mnist/`` (``<data_dir>/fashion-mnist/`` or ``<data_dir>/fashion_mnist/``), where
   ``data_dir`` is the CLI's ``--data-dir`` or else ``NUMPYML_DATA_DIR``;
2. for Fashion-MNIST, the Debian package's folder :data:`DEBIAN_FASHION_MNIST_DIR`;
3. the download cache, ``files.cache_dir()/<mnist|fashion-mnist>/``;
4. when ``download`` is true, the official source, downloaded into the cache with its md5 checked.

Each name is accepted with ``.gz`` or without; compression is detected by content. Parsed arrays
are kept per process (keyed by the resolved file path), so loading twice parses once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from numpyml_core import UserError
from numpyml_core import plugin_api
from numpyml_core.plugin_api import ArraySplit

from . import files
from .idx import read_idx_images, read_idx_labels

#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: split -> (images file, labels file), official names without ``.gz``.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

IMAGE_SIZE = (28, 28)

#: Parsed arrays of this process: (kind, resolved path, size, mtime, num_classes) -> array.
_ARRAY_CACHE: dict[tuple, np.ndarray] = {}


def clear_cache() -> None:
    """Forget every array parsed so far in this process."""
    _ARRAY_CACHE.clear()


def _cache_key(kind: str, path: Path, num_classes: int) -> tuple:
    resolved = path.resolve()
    stat = resolved.stat()
    return (kind, str(resolved), stat.st_size, stat.st_mtime_ns, num_classes)


class _IdxDataset:
    """Shared machinery of the MNIST-format datasets; subclasses set the class attributes."""

    title = ""  # for messages
    folders: tuple[str, ...] = ()  # sub-folders of the data directory; the first is used in the cache
    base_url = ""
    md5: dict[str, str] = {}  # official .gz file name -> md5
    install_hint = ""  # extra way to get the files, for messages

    input_shape = (28, 28, 1)
    num_classes = 10
    class_names: list[str] = []
    #: The official split sizes, the most :meth:`load` returns (see the Dataset protocol).
    split_sizes = {"train": 60000, "test": 10000}

    def __init__(self, download: bool = True):
        self.download = download
        self.class_names = list(type(self).class_names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(download={self.download!r})"

    # -- where the files are -------------------------------------------------------------------
    def system_dirs(self) -> list[Path]:
        return []

    def search_dirs(self, data_dir: str | os.PathLike | None) -> list[Path]:
        return files.search_directories(self.folders, data_dir, system_dirs=self.system_dirs())

    def _download_dir(self) -> Path:
        return files.cache_dir() / self.folders[0]

    def locate(self, data_dir: str | os.PathLike | None) -> dict[str, Path]:
        """Official name (without ``.gz``) -> path of every file, downloading missing ones when
        allowed."""
        dirs = self.search_dirs(data_dir)
        stems = [name for pair in SPLIT_FILES.values() for name in pair]
        found = {stem: files.find_file([f"{stem}.gz", stem], dirs) for stem in stems}
        missing = [stem for stem, path in found.items() if path is None]
        if not missing:
            return found  # type: ignore[return-value]
        if not self.download:
            raise UserError(self._missing_message(missing, dirs, data_dir, "downloading is switched off (download = false)"))
        for stem in missing:
            name = f"{stem}.gz"
            url = self.base_url + name
            destination = self._download_dir() / name
            print(f"numpyml: downloading {self.title} {name} from {url} to {destination}", file=sys.stderr)
            try:
                found[stem] = files.download(url, destination, self.md5.get(name))
            except UserError as exc:
                raise UserError(
                    f"{exc} " + self._missing_message([stem], dirs, data_dir, "the download failed")
                ) from None
        return found  # type: ignore[return-value]

    def _missing_message(self, stems: list[str], dirs: list[Path], data_dir, why: str) -> str:
        names = ", ".join(f"{stem}.gz" for stem in stems)
        plural = "files" if len(stems) > 1 else "file"
        root = data_dir if data_dir is not None else plugin_api.data_dir_from_env()
        lines = [
            f"{self.title}: {plural} {names} not found (also accepted without .gz, raw or gzip). "
            f"Looked in: {files.describe_directories(dirs)}; and {why}."
        ]
        if root is not None:
            stray = [s for s in stems if (Path(root) / f"{s}.gz").is_file() or (Path(root) / s).is_file()]
            if stray:
                lines.append(
                    f"{root} itself holds {stray[0]}: move the files into {Path(root) / self.folders[0]}."
                )
        fixes = [
            f"pass --data-dir DIR (or set NUMPYML_DATA_DIR=DIR) where DIR/{self.folders[0]}/ holds the "
            "four official files",
            f"or allow downloading ('download = true' in the [dataset] table) into {self._download_dir()}",
        ]
        if self.install_hint:
            fixes.append(f"or {self.install_hint}")
        lines.append("To fix: " + ", ".join(fixes) + ".")
        return " ".join(lines)

    # -- reading -------------------------------------------------------------------------------
    def _read(self, kind: str, path: Path) -> np.ndarray:
        key = _cache_key(kind, path, self.num_classes)
        array = _ARRAY_CACHE.get(key)
        if array is not None:
            return array
        try:
            if kind == "images":
                array = read_idx_images(path)
                if array.shape[1:] != IMAGE_SIZE:
                    raise UserError(
                        f"{path}: images are {array.shape[1]}x{array.shape[2]}, expected "
                        f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} for {self.title}. Is this the right data set?"
                    )
                array = array.reshape(*array.shape, 1)
            else:
                array = read_idx_labels(path, self.num_classes)
        except UserError as exc:
            if path.parent == self._download_dir():
                raise UserError(f"{exc} It is in the download cache: delete it to download it again.") from None
            raise
        _ARRAY_CACHE[key] = array
        return array

    def load(self, data_dir: str | None = None) -> dict[str, ArraySplit]:
        """``{"train": ..., "test": ...}``: uint8 images ``(N, 28, 28, 1)`` with their labels."""
        paths = self.locate(data_dir)
        splits: dict[str, ArraySplit] = {}
        for split, (images_name, labels_name) in SPLIT_FILES.items():
            images = self._read("images", paths[images_name])
            labels = self._read("labels", paths[labels_name])
            if len(images) == 0:
                raise UserError(
                    f"{self.title} {split} split: {paths[images_name]} holds no images (an empty split cannot "
                    "be trained on or evaluated). Replace it with the official file."
                )
            if len(images) != len(labels):
                raise UserError(
                    f"{self.title} {split} split: {paths[images_name]} holds {len(images)} images but "
                    f"{paths[labels_name]} holds {len(labels)} labels; the two files must come from the "
                    "same release. Replace them with the official files."
                )
            splits[split] = ArraySplit(images, labels)
        return splits


class MNIST(_IdxDataset):
    """MNIST handwritten digits: 28x28x1 uint8 images, classes "0".."9", 60,000 train and 10,000
    test images.

    Files (official names, .gz or raw) are looked for in ``<data_dir>/mnist/`` (``--data-dir`` or
    ``NUMPYML_DATA_DIR``), then in the cache ``<cache>/mnist/``; with ``download = true`` missing
    files are downloaded there from https://storage.googleapis.com/cvdf-datasets/mnist/ and checked
    against their md5.
    """

    title = "MNIST"
    folders = ("mnist",)
    base_url = "https://storage.googleapis.com/cvdf-datasets/mnist/"
    md5 = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    class_names = [str(digit) for digit in range(10)]

    def __init__(self, download: bool = True):
        """``download``: fetch missing files from the official mirror into the cache."""
        super().__init__(download=download)


class FashionMNIST(_IdxDataset):
    """Fashion-MNIST (Zalando): 28x28x1 uint8 images of clothing in 10 classes, 60,000 train and
    10,000 test images.

    Files (official names, .gz or raw) are looked for in ``<data_dir>/fashion-mnist/`` or
    ``<data_dir>/fashion_mnist/`` (``--data-dir`` or ``NUMPYML_DATA_DIR``), then in Debian's
    ``/usr/share/datasets/fashion-mnist/`` (``apt-get install dataset-fashion-mnist``), then in the
    cache ``<cache>/fashion-mnist/``; with ``download = true`` missing files are downloaded there
    from the official source and checked against their md5.
    """

    title = "Fashion-MNIST"
    folders = ("fashion-mnist", "fashion_mnist")
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    md5 = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    install_hint = "on Debian/Ubuntu install the files with 'apt-get install dataset-fashion-mnist'"
    class_names = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    def __init__(self, download: bool = True):
        """``download``: fetch missing files from the official source into the cache."""
        super().__init__(download=download)

    def system_dirs(self) -> list[Path]:
        # read the module constant at call time, so it can be patched
        return [DEBIAN_FASHION_MNIST_DIR]
