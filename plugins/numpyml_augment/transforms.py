"""Data augmentation for image batches: random crop with padding, horizontal flip, cutout, and the
derandomized ``alternating_flip`` (with its ``batch_context`` callback).

Each transform is called once per training batch as ``transform(x, rng) -> x`` with ``x`` a
float32 NHWC batch ``(N, H, W, C)`` (already scaled and normalized by the dataset) and ``rng`` the
run's seeded augmentation generator, so a run's augmentation is reproducible from its seed. Every
transform draws all of a batch's random numbers in one call and works on the whole batch with
array indexing: there is no per-image Python loop. The input array is never modified: each
returns a new array of the same shape and dtype.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from numpyml_core import hookimpl


def _check_images(x: np.ndarray, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} expects a batch of NHWC images (N, H, W, C), got shape {x.shape}")


class RandomCrop:
    """Pad every image by ``padding`` pixels on each side, then cut a random window of the
    original size: a random translation by up to ``padding`` pixels in each direction.

    ``mode``: ``"reflect"`` (mirror the border, without repeating the edge pixel: numpy's
    ``reflect``) or ``"zero"`` (pad with zeros; after per-channel normalization zero is the mean
    colour). Offsets are uniform in ``0..2*padding``, independently for rows and columns and for
    each image. Shape ``(N, H, W, C)`` in and out; ``padding = 0`` returns the batch unchanged.
    """

    def __init__(self, padding: int = 4, mode: Literal["reflect", "zero"] = "reflect") -> None:
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
        if mode not in ("reflect", "zero"):
            raise ValueError(f'mode must be "reflect" or "zero", got {mode!r}')
        self.padding = padding
        self.mode = mode

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_images(x, "random_crop")
        p = self.padding
        n, h, w, _ = x.shape
        if p == 0 or n == 0:
            return x.copy()
        if self.mode == "reflect" and (p >= h or p >= w):
            raise ValueError(f"random_crop: reflect padding {p} needs images larger than {p} pixels, got {h}x{w}")
        widths = ((0, 0), (p, p), (p, p), (0, 0))
        padded = np.pad(x, widths, mode="reflect") if self.mode == "reflect" else np.pad(x, widths)
        offsets = rng.integers(0, 2 * p + 1, size=(2, n))
        rows = offsets[0][:, None] + np.arange(h)  # (N, H)
        cols = offsets[1][:, None] + np.arange(w)  # (N, W)
        # one gather: out[i, r, c] = padded[i, rows[i, r], cols[i, c]]
        return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding}, mode={self.mode!r})"


class HorizontalFlip:
    """Mirror each image left-right with probability ``p`` (independently per image).
    Shape ``(N, H, W, C)`` in and out."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_images(x, "horizontal_flip")
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, :, ::-1]
        return out

    def __repr__(self) -> str:
        return f"HorizontalFlip(p={self.p})"


class Cutout:
    """Cutout (DeVries & Taylor, 2017): set a ``size`` x ``size`` square of every image to
    ``value`` (0: after per-channel normalization, the mean colour), with probability ``p`` per
    image. The square's centre is uniform over the image, so squares near a border are clipped
    (as in the paper). Shape ``(N, H, W, C)`` in and out.
    """

    def __init__(self, size: int = 8, p: float = 1.0, value: float = 0.0) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.size = size
        self.p = float(p)
        self.value = float(value)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_images(x, "cutout")
        n, h, w, _ = x.shape
        centres = rng.integers(0, [[h], [w]], size=(2, n))  # row and column of each centre
        apply = rng.random(n) < self.p
        top = centres[0] - self.size // 2  # the square covers top..top+size-1 (clipped)
        left = centres[1] - self.size // 2
        rows = np.arange(h)[None, :] - top[:, None]  # (N, H): inside when 0 <= . < size
        cols = np.arange(w)[None, :] - left[:, None]
        in_rows = (rows >= 0) & (rows < self.size) & apply[:, None]
        in_cols = (cols >= 0) & (cols < self.size)
        mask = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
        out = x.copy()
        out[mask] = self.value
        return out

    def __repr__(self) -> str:
        return f"Cutout(size={self.size}, p={self.p}, value={self.value})"


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def hash_bits(indices: np.ndarray, seed: int) -> np.ndarray:
    """One pseudo-random bit per sample index (SplitMix64 of ``index`` and ``seed``, vectorized):
    a fixed half of any large set of indices, the same in every epoch and process."""
    z = np.asarray(indices).astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (seed + 1)) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(63)).astype(bool)


class AlternatingFlip:
    """Derandomized horizontal flip (airbench's "alternating flip", Jordan 2024, arXiv 2404.00498):
    a fixed pseudo-random half of the training images (chosen by ``seed`` and each image's index in
    the training split) is mirrored in odd epochs, the other half in even epochs, so every image is
    seen both ways in every two epochs instead of at random.

    It needs each batch's epoch and sample indices, which the trainer does not give transforms:
    select the ``batch_context`` callback too, which hands them over before every batch::

        [[training.transforms]]
        type = "alternating_flip"

        [[callbacks]]
        type = "batch_context"

    Without a context (no ``batch_context`` callback; ``numpyml check``) it warns once and mirrors
    each image with probability 1/2 from ``rng``, like ``horizontal_flip``. ``__call__`` also takes
    ``epoch`` and ``indices`` keywords, for a trainer that passes them. Shape ``(N, H, W, C)`` in and
    out; one vectorized hash and one masked copy per batch. Resume is exact: the flips depend only
    on the epoch, the indices and ``seed``.
    """

    def __init__(self, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.context: tuple[int, np.ndarray] | None = None
        self._warned = False

    def set_batch_context(self, epoch: int, indices: np.ndarray) -> None:
        """The epoch (counted from 1) and the training-split indices of the next batch."""
        self.context = (int(epoch), np.asarray(indices))

    def flips(self, epoch: int, indices: np.ndarray) -> np.ndarray:
        """Which of the samples ``indices`` are mirrored in ``epoch``."""
        return hash_bits(indices, self.seed) ^ bool(epoch % 2 == 0)

    def __call__(self, x: np.ndarray, rng: np.random.Generator, epoch: int | None = None,
                 indices: np.ndarray | None = None) -> np.ndarray:
        _check_images(x, "alternating_flip")
        if epoch is None and self.context is not None:
            epoch, indices = self.context
            self.context = None  # one batch only
        if epoch is not None and indices is not None and len(indices) == len(x):
            flip = self.flips(epoch, indices)
        else:
            if not self._warned:
                warnings.warn("alternating_flip got no batch context (select the batch_context callback): "
                              "mirroring images at random instead", stacklevel=2)
                self._warned = True
            flip = rng.random(len(x)) < 0.5
        out = x.copy()
        out[flip] = x[flip, :, ::-1]
        return out

    def __repr__(self) -> str:
        return f"AlternatingFlip(seed={self.seed})"


class BatchContext:
    """Hands every transform that has a ``set_batch_context(epoch, indices)`` method (such as
    ``alternating_flip``) the epoch and the training-split sample indices of the batch about to be
    augmented, before every batch. Needed until the trainer passes them to transforms itself."""

    @hookimpl
    def numpyml_on_batch_start(self, run: Any, epoch: int) -> None:
        indices = run.batch_indices
        for transform in run.transforms:
            setter = getattr(transform, "set_batch_context", None)
            if setter is not None and indices is not None:
                setter(epoch, indices)

    def __repr__(self) -> str:
        return "BatchContext()"
