"""A saved model's predictions: on a dataset split (batch by batch) and on image files.

The model file says which dataset it was trained on (``architecture["dataset"]``); the dataset is
created through the plugin manager, with the parameters of the run's config.toml ``[dataset]``
table when the model sits in its run folder (so a normalized dataset is normalized the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from numpyml_core import RunFolder, UserError

#: The largest image ``numpyml predict`` reads, in pixels (width x height): 50 megapixels, more than
#: a 48-megapixel phone photo or an A4 page scanned at 600 dpi. A larger one is refused from its
#: header, before any pixel is decoded: a 12000x12000 PNG is 140 KB on disk but 144 MB decoded and
#: several GB in the float arithmetic of the conversion.
MAX_IMAGE_PIXELS = 50_000_000


def to_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Rows of class probabilities: ``outputs`` as they are when they already are (a softmax head),
    else their softmax (a network that ends in logits)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2:
        raise UserError(f"the model outputs shape {outputs.shape[1:]} per sample, not a vector of class scores.")
    sums = outputs.sum(axis=1)
    if np.all(outputs >= 0) and np.allclose(sums, 1.0, atol=1e-3):
        return outputs
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def predict_split(model: Any, split: Any, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities ``(N, classes)``, labels ``(N,)``) of ``model`` on a whole split, in evaluation mode."""
    n = len(split)
    probabilities: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for start in range(0, n, batch_size):
        x, y = split.batch(np.arange(start, min(start + batch_size, n)))
        probabilities.append(to_probabilities(model.predict(x)).astype(np.float32))
        labels.append(np.asarray(y))
    if not probabilities:
        return np.zeros((0, 0), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(probabilities), np.concatenate(labels)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def dataset_params(config: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The ``[dataset]`` parameters of a run's resolved config, when it names dataset ``name``."""
    table = (config or {}).get("dataset")
    if not isinstance(table, dict) or table.get("type") != name:
        return {}
    return {k: v for k, v in table.items() if k not in ("type", "validation")}


def read_run_config(model_path: Path) -> dict[str, Any] | None:
    """The config.toml beside a model file (its run folder), if there is one and it can be read."""
    folder = RunFolder(Path(model_path).parent)
    if not folder.is_run():
        return None
    try:
        return folder.read_config()
    except UserError:
        return None


def create_dataset(manager: Any, architecture: dict[str, Any], config: dict[str, Any] | None, where: str) -> Any:
    """The dataset a model was trained on, created through the plugin manager (not loaded)."""
    name = architecture.get("dataset")
    if not name:
        raise UserError(f"{where}: the model does not say which dataset it was trained on.")
    params = dataset_params(config, name)
    try:
        return manager.create("dataset", name, **params)
    except UserError:
        if not params:
            raise
        return manager.create("dataset", name)


def class_names(architecture: dict[str, Any], classes: int, dataset: Any = None) -> list[str]:
    names = list(architecture.get("class_names") or [])
    if len(names) != classes and dataset is not None:
        names = list(getattr(dataset, "class_names", []) or [])
    if len(names) != classes:
        names = [str(i) for i in range(classes)]
    return [str(n) for n in names]


# --------------------------------------------------------------------------------------------
# image files
# --------------------------------------------------------------------------------------------
def model_image_shape(input_shape: tuple[int, ...] | list[int], where: str) -> tuple[int, int, int]:
    """(H, W, C) of a model that takes images, C being 1 (grayscale) or 3 (RGB)."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3 and shape[2] in (1, 3):
        return shape
    raise UserError(
        f"{where}: the model takes inputs of shape {shape}, not images (H, W, 1) or (H, W, 3); "
        "'numpyml predict' reads image files only for image models."
    )


def input_converter(dataset: Any) -> Any:
    """A function from uint8 images ``(N, H, W, C)`` to the model's float32 inputs: scaled to [0, 1]
    as the built-in datasets do (ArraySplit), then normalized per channel when the dataset was
    (``normalize`` true with ``mean`` and ``std``)."""
    mean = std = None
    if dataset is not None and getattr(dataset, "normalize", False):
        mean, std = getattr(dataset, "mean", None), getattr(dataset, "std", None)
        if mean is None or std is None or len(np.atleast_1d(mean)) == 0:
            mean = std = None

    def convert(images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float32) / np.float32(255.0)
        if mean is not None:
            x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        return x

    return convert


def _to_8bit(image: Any) -> Any:
    """16-bit and float images (``I;16``, ``I``, ``F``) as 8-bit grayscale."""
    from PIL import Image

    array = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        array = array / 257.0
    elif image.mode == "I":
        array = array / 257.0 if array.max(initial=0) > 255 else array
    elif image.mode == "F" and array.max(initial=0) <= 1.0:
        array = array * 255.0
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8))  # 2-D uint8: mode L


def light_background(gray: np.ndarray) -> bool:
    """Whether a grayscale image (2-D uint8) has a light background: the median of its border
    pixels (the outer 10 % on each side) is above mid-grey."""
    h, w = gray.shape
    band_h, band_w = max(1, h // 10), max(1, w // 10)
    border = np.concatenate([gray[:band_h].ravel(), gray[-band_h:].ravel(),
                             gray[:, :band_w].ravel(), gray[:, -band_w:].ravel()])
    return bool(np.median(border) > 127)


def center_like_mnist(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """MNIST's own preprocessing of a white-on-black image (2-D uint8): crop to the ink, scale it to
    fit a box of 20/28 of the output size keeping its aspect ratio, and place it so that its centre
    of mass is the centre of the ``height`` x ``width`` output."""
    from PIL import Image

    # In float32, in place, and bounding rows and columns rather than listing ink pixels: a 50-megapixel
    # image costs about 0.6 GB here, not 2.5 GB. (gray - median is a multiple of 0.5 up to 255: exact
    # in float32; the comparison and the scaling below are done in float64, as before.)
    median = np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.float64))
    ink = gray.astype(np.float32)
    ink -= np.float32(median)
    np.maximum(ink, 0, out=ink)  # background 0
    peak = float(ink.max())
    if peak <= 0:  # nothing brighter than the background: no ink to centre, resize the whole image
        return np.asarray(Image.fromarray(gray).resize((width, height), Image.Resampling.BOX))
    mask = ink > np.float64(0.2 * peak)
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    del mask
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    scaled = ink[top:bottom, left:right].astype(np.float64)
    del ink
    scaled *= 255.0
    scaled /= peak
    crop = Image.fromarray(np.clip(scaled, 0, 255, out=scaled).astype(np.uint8))
    del scaled
    box = 20.0 / 28.0 * min(height, width)
    scale = box / max(crop.size)
    size = (max(1, int(round(crop.size[0] * scale))), max(1, int(round(crop.size[1] * scale))))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    digit = np.asarray(crop.resize(size, method), dtype=np.float64)
    total = digit.sum()
    if total > 0:
        cy = float((digit.sum(axis=1) * np.arange(digit.shape[0])).sum() / total)
        cx = float((digit.sum(axis=0) * np.arange(digit.shape[1])).sum() / total)
    else:
        cy, cx = (digit.shape[0] - 1) / 2, (digit.shape[1] - 1) / 2
    y0 = int(round((height - 1) / 2 - cy))
    x0 = int(round((width - 1) / 2 - cx))
    y0 = min(max(y0, 0), height - digit.shape[0])
    x0 = min(max(x0, 0), width - digit.shape[1])
    canvas = np.zeros((height, width), dtype=np.float64)
    canvas[y0:y0 + digit.shape[0], x0:x0 + digit.shape[1]] = digit
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def load_image(path: str | Path, shape: tuple[int, int, int], invert: bool | None = None,
               center: bool = False) -> tuple[np.ndarray, bool]:
    """An image file as a uint8 array of ``shape`` (H, W, C) and whether it was inverted.

    Any size and colour mode: EXIF rotation applied; transparency composited onto white; converted
    to grayscale (C = 1) or RGB (C = 3); resized to H x W (area averaging when shrinking, bicubic
    when enlarging). ``invert``: True or False forces it; ``None`` (auto) inverts a grayscale
    model's input when the image has a light background, since MNIST-style data is white on black.
    ``center`` (grayscale only): instead of resizing the whole image, :func:`center_like_mnist`.
    """
    import re
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    height, width, channels = shape

    def too_large(pixels: int | None, size: str = "") -> UserError:
        count = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
        return UserError(f"{path}: the image is {size}{count}, more than the {MAX_IMAGE_PIXELS:,} pixels "
                         f"({MAX_IMAGE_PIXELS / 1e6:g} megapixels) 'numpyml predict' reads; scale it down first "
                         f"(the model sees it at {height}x{width} anyway).")

    try:
        with warnings.catch_warnings():
            # Pillow's own decompression-bomb limits (a warning, then an error, from the header): ours is lower
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                columns, rows = opened.size
                if columns * rows > MAX_IMAGE_PIXELS:  # from the header: no pixel decoded yet
                    raise too_large(columns * rows, f"{columns}x{rows}, ")
                opened.load()
                image = ImageOps.exif_transpose(opened) or opened
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise too_large(int(found.group(1)) if found else None) from None
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file.") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected an image file (PNG or JPEG).") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as an image ({exc}); give a PNG or JPEG file.") from None
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    if invert is None:
        invert = channels == 1 and light_background(np.asarray(image))
    if invert:
        image = ImageOps.invert(image)
    if center and channels == 1:
        return center_like_mnist(np.asarray(image, dtype=np.uint8), height, width)[..., None], bool(invert)
    if image.size != (width, height):
        shrinking = image.size[0] >= width and image.size[1] >= height
        method = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
        image = image.resize((width, height), method)
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(height, width, channels), bool(invert)


def top_k(probabilities: np.ndarray, names: list[str], k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probabilities, kind="stable")[: max(1, k)]
    return [{"class": names[i], "index": int(i), "probability": float(probabilities[i])} for i in order]
