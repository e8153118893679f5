"""Augmentation transforms: exact behaviour, vectorized, seeded, registered."""

from __future__ import annotations

import numpy as np
import pytest

from numpyml_core import ConfigError, create
from numpyml_kit.testing import check_transform, run_tiny_experiment
from numpyml_augment.transforms import Cutout, HorizontalFlip, RandomCrop


def batch(n: int = 16, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(np.float32)


def test_random_crop_is_a_translation_of_the_padded_image():
    x = batch()
    for mode, pad_mode in (("reflect", "reflect"), ("zero", "constant")):
        out = RandomCrop(padding=2, mode=mode)(x, np.random.default_rng(5))
        assert out.shape == x.shape and out.dtype == np.float32
        # the same offsets, drawn the documented way, give the same windows
        offsets = np.random.default_rng(5).integers(0, 5, size=(2, len(x)))
        padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode=pad_mode)
        for i in range(len(x)):
            dy, dx = offsets[:, i]
            np.testing.assert_array_equal(out[i], padded[i, dy:dy + 8, dx:dx + 8])


def test_random_crop_offsets_cover_the_range_and_centre_is_identity():
    # every pixel holds its column number + 1, so a zero-padded window tells its horizontal offset
    x = np.tile(np.arange(1, 9, dtype=np.float32)[None, None, :, None], (2000, 8, 1, 1))
    out = RandomCrop(padding=4, mode="zero")(x, np.random.default_rng(1))
    first = out[:, 4, :, 0]
    offsets = np.where(first[:, 0] > 0, first[:, 0] + 3, 4 - np.argmax(first > 0, axis=1))
    assert set(offsets.tolist()) == set(range(9))  # 0..2*padding, each about equally often
    assert np.bincount(offsets.astype(int)).min() > 150
    x = batch(4)
    np.testing.assert_array_equal(RandomCrop(padding=0)(x, np.random.default_rng(0)), x)


def test_horizontal_flip():
    x = batch(1000, 4, 5, 2)
    out = HorizontalFlip(p=0.5)(x, np.random.default_rng(3))
    flipped = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | kept) and 400 < flipped.sum() < 600
    np.testing.assert_array_equal(flipped, np.random.default_rng(3).random(1000) < 0.5)
    np.testing.assert_array_equal(HorizontalFlip(p=1.0)(x, np.random.default_rng(0)), x[:, :, ::-1])
    np.testing.assert_array_equal(HorizontalFlip(p=0.0)(x, np.random.default_rng(0)), x)
    assert not np.shares_memory(HorizontalFlip(p=0.0)(x, np.random.default_rng(0)), x)


def test_cutout_zeroes_one_clipped_square_per_image():
    x = np.ones((500, 12, 12, 3), dtype=np.float32)
    out = Cutout(size=4)(x, np.random.default_rng(2))
    holes = out[..., 0] == 0
    assert np.all((out == 0) == holes[..., None])  # every channel of a pixel together
    counts = holes.sum(axis=(1, 2))
    assert counts.max() == 16 and counts.min() >= 4  # full squares inside, clipped at the borders (>= 2x2)
    for hole in holes[:50]:
        rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
        assert hole.sum() == len(rows) * len(cols)  # a rectangle ...
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)  # ... in one piece
    centres = np.random.default_rng(2).integers(0, [[12], [12]], size=(2, 500))
    assert holes[np.arange(500), centres[0], centres[1]].all()  # the drawn centre is inside
    none = Cutout(size=4, p=0.0)(x, np.random.default_rng(2))
    np.testing.assert_array_equal(none, x)
    np.testing.assert_array_equal(x, 1.0)  # input untouched


@pytest.mark.parametrize("name, params", [("random_crop", {"padding": 2}), ("random_crop", {"mode": "zero"}),
                                          ("horizontal_flip", {}), ("cutout", {"size": 3})])
def test_contract_and_determinism(name, params):
    check_transform(lambda: create("transform", name, **params))
    x = batch(32)
    a = create("transform", name, **params)(x, np.random.default_rng(7))
    b = create("transform", name, **params)(x, np.random.default_rng(7))
    c = create("transform", name, **params)(x, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape


def test_bad_parameters():
    with pytest.raises(ConfigError, match="padding"):
        create("transform", "random_crop", padding=-1)
    with pytest.raises(ConfigError, match="mode"):
        create("transform", "random_crop", mode="wrap")
    with pytest.raises(ConfigError, match="p must be"):
        create("transform", "horizontal_flip", p=1.5)
    with pytest.raises(ConfigError, match="size"):
        create("transform", "cutout", size=0)
    with pytest.raises(ValueError, match="NHWC"):
        RandomCrop()(np.zeros((4, 10), np.float32), np.random.default_rng(0))


def test_vectorized_speed():
    """A CIFAR-sized batch of 256 takes milliseconds (no per-image Python loop)."""
    import time

    x = batch(256, 32, 32, 3)
    rng = np.random.default_rng(0)
    for transform in (RandomCrop(), HorizontalFlip(), Cutout(size=8)):
        transform(x, rng)
        start = time.perf_counter()
        for _ in range(5):
            transform(x, rng)
        assert (time.perf_counter() - start) / 5 < 0.1


def test_transforms_in_the_trainer():
    summary, run = run_tiny_experiment("transform", "random_crop", {"padding": 1}, epochs=2)
    assert summary["epochs"] == 2 and np.isfinite(summary["train_loss"])
