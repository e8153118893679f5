"""Write a small data set in each of the user-file formats into the current folder (README, "Your own
data"): blobs.npz (8x8 grey images, 2 classes), blobs_train.csv / blobs_test.csv (2 features, 3 named
classes), shapes/train/<class>/*.png and shapes/test/<class>/*.png (16x16 grey images, 2 classes).
Each trains to well over 90 % test accuracy with experiments/npz.toml, csv.toml and image_folder.toml."""

from pathlib import Path

import numpy as np

rng = np.random.default_rng(0)

# npz, Keras layout: uint8 images whose brightness tells the class
y = rng.integers(0, 2, 600)
x = (rng.random((600, 8, 8)) * 128 + y[:, None, None] * 100).astype(np.uint8)
np.savez("blobs.npz", x_train=x[:500], y_train=y[:500], x_test=x[500:], y_test=y[500:])

# csv: three Gaussian blobs, text labels
centers = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
for split, n in (("train", 900), ("test", 300)):
    labels = rng.integers(0, 3, n)
    points = rng.normal(size=(n, 2)) + centers[labels]
    rows = "".join(f"{a:.4f},{b:.4f},{'abc'[k]}\n" for (a, b), k in zip(points, labels))
    Path(f"blobs_{split}.csv").write_text("x1,x2,kind\n" + rows)

# image_folder: dark and light noise images as PNG files
try:
    from PIL import Image
except ImportError:
    print("Pillow is not installed (pip install 'numpyml[image]'): shapes/ not written")
else:
    for split, n in (("train", 60), ("test", 20)):
        for i in range(n):
            label = i % 2
            folder = Path("shapes", split, ["dark", "light"][label])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((16, 16)) * 100 + label * 150).astype(np.uint8)).save(folder / f"{i}.png")
print("wrote blobs.npz, blobs_train.csv, blobs_test.csv and shapes/")
