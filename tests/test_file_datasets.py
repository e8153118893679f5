"""The user-file datasets (issue 19): npz, csv and image_folder train to >= 90 % test accuracy on data
made in their format (a small subset of the real MNIST saved as npz and as PNG folders; Gaussian blobs as
CSV), and their parameters, layouts and label handling behave as documented."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import numpyml_core as nm
from conftest import require_extra
from numpyml_datasets import _files
from numpyml_datasets.csvfile import CSV
from numpyml_datasets.imagefolder import ImageFolder
from numpyml_datasets.npz import NPZ

TRAIN, TEST = 3000, 500  # MNIST samples used: enough for 90 % with an MLP in about a second


@pytest.fixture(autouse=True)
def fresh_cache():
    _files.clear_cache()
    yield
    _files.clear_cache()


def mnist_subset(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    def read(name: str, offset: int, count: int, size: int) -> np.ndarray:
        with gzip.open(mnist_dir / "mnist" / name) as handle:
            data = handle.read(offset + count * size)
        return np.frombuffer(data[offset:], dtype=np.uint8)

    x_train = read("train-images-idx3-ubyte.gz", 16, TRAIN, 784).reshape(TRAIN, 28, 28)
    y_train = read("train-labels-idx1-ubyte.gz", 8, TRAIN, 1)
    x_test = read("t10k-images-idx3-ubyte.gz", 16, TEST, 784).reshape(TEST, 28, 28)
    y_test = read("t10k-labels-idx1-ubyte.gz", 8, TEST, 1)
    return x_train, y_train, x_test, y_test


def mlp(dataset: dict, hidden: int = 128, epochs: int = 10, lr: float = 0.3, flatten: bool = True,
        classes: int = 10) -> dict:
    layers = ([{"type": "flatten"}] if flatten else []) + [
        {"type": "dense", "units": hidden, "activation": "relu"},
        {"type": "dense", "units": classes, "activation": "softmax"},
    ]
    return {
        "name": "files", "seed": 1, "dataset": dataset, "model": {"layers": layers},
        "cost": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "learning_rate": lr},
        "training": {"epochs": epochs, "batch_size": 32},
    }


def train(table: dict, tmp_path: Path) -> dict:
    experiment = nm.Experiment.from_dict(table, source="test")
    experiment.validate()
    return nm.run(experiment, output=tmp_path / "run", progress=False).summary


# --------------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_npz_mnist_subset_trains_to_90_percent(mnist_dir, tmp_path, compressed):
    x_train, y_train, x_test, y_test = mnist_subset(mnist_dir)
    path = tmp_path / "mnist.npz"
    (np.savez_compressed if compressed else np.savez)(path, x_train=x_train, y_train=y_train, x_test=x_test,
                                                      y_test=y_test)
    summary = train(mlp({"type": "npz", "path": str(path), "validation": 200}), tmp_path)
    assert summary["test_accuracy"] >= 0.90, summary
    assert "validation_accuracy" in summary


def test_npz_memory_maps_uncompressed_files_and_reads_the_keras_layout(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 5, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 30).astype(np.uint8)
    np.savez(tmp_path / "d.npz", images=x, labels=y, x_test=x[:6], y_test=y[:6])
    dataset = NPZ(str(tmp_path / "d.npz"), x_train="images", y_train="labels", class_names=list("abcd"),
                  num_classes=4)
    assert dataset.input_shape == (5, 4, 3) and dataset.num_classes == 4 and dataset.split_sizes == {"train": 30,
                                                                                                     "test": 6}
    splits = dataset.load()
    assert isinstance(splits["train"].x, np.memmap)
    xb, yb = splits["train"].batch(np.array([3, 7]))
    np.testing.assert_allclose(xb, x[[3, 7]] / np.float32(255), rtol=1e-6)
    assert yb.dtype == np.int64 and list(yb) == list(y[[3, 7]])
    assert dataset.class_names == ["a", "b", "c", "d"]


def test_npz_feature_rows_float_kept_and_normalize(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(40, 3)) * [1, 10, 100] + [5, -5, 50]).astype(np.float32)
    y = np.arange(40) % 2
    np.savez(tmp_path / "f.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    plain = NPZ(str(tmp_path / "f.npz")).load()["test"].batch(np.arange(40))[0]
    np.testing.assert_array_equal(plain, x)
    normed = NPZ(str(tmp_path / "f.npz"), normalize=True).load()["test"].batch(np.arange(40))[0]
    np.testing.assert_allclose(normed.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=0), 1, atol=1e-4)
    fixed = NPZ(str(tmp_path / "f.npz"), normalize=True, mean=[5, -5, 50], std=[1, 10, 100])
    np.testing.assert_allclose(fixed.load()["train"].batch(np.arange(40))[0], (x - [5, -5, 50]) / [1, 10, 100],
                               rtol=1e-5, atol=1e-5)


def test_npz_path_relative_to_the_data_dir(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "d.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(4, int),
             x_test=np.zeros((2, 2)), y_test=np.zeros(2, int))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUMPYML_DATA_DIR", str(tmp_path / "data"))
    assert NPZ("d.npz").input_shape == (2,)


# --------------------------------------------------------------------------------------------
# csv
# --------------------------------------------------------------------------------------------
def write_blobs(path: Path, n: int, seed: int, header: bool = True) -> None:
    rng = np.random.default_rng(seed)
    centers = {"circle": (0.0, 0.0, 0.0, 0.0), "square": (3.0, 0.0, 1.0, -1.0), "triangle": (0.0, 3.0, -1.0, 2.0)}
    names = sorted(centers)
    lines = ["x1,x2,x3,x4,shape"] if header else []
    for i in range(n):
        name = names[rng.integers(len(names))]
        point = np.asarray(centers[name]) + rng.normal(scale=0.7, size=4)
        lines.append(",".join(f"{v:.5f}" for v in point) + f",{name}")
    path.write_text("\n".join(lines) + "\n")


def test_csv_gaussian_blobs_train_to_90_percent(tmp_path):
    write_blobs(tmp_path / "train.csv", 1500, 0)
    write_blobs(tmp_path / "test.csv", 400, 1)
    dataset = {"type": "csv", "path": str(tmp_path / "train.csv"), "test_path": str(tmp_path / "test.csv"),
               "label_column": "shape", "normalize": True, "validation": 100}
    summary = train(mlp(dataset, hidden=16, epochs=5, lr=0.2, flatten=False, classes=3), tmp_path)
    assert summary["test_accuracy"] >= 0.90, summary
    model = nm.load_model(tmp_path / "run")
    assert model.architecture["class_names"] == ["circle", "square", "triangle"]


def test_csv_integer_labels_index_columns_and_no_header(tmp_path):
    (tmp_path / "d.csv").write_text("2;1.5;0.5\n0;2;3\n\n1;-1;1e-3\n")
    dataset = CSV(str(tmp_path / "d.csv"), label_column=0, header=False, delimiter=";")
    assert dataset.input_shape == (2,) and dataset.num_classes == 3 and dataset.class_names == ["0", "1", "2"]
    splits = dataset.load()
    assert set(splits) == {"train"}
    x, y = splits["train"].batch(np.arange(3))
    np.testing.assert_allclose(x, [[1.5, 0.5], [2, 3], [-1, 1e-3]], rtol=1e-6)
    assert list(y) == [2, 0, 1]


# --------------------------------------------------------------------------------------------
# image_folder
# --------------------------------------------------------------------------------------------
def save_pngs(root: Path, x: np.ndarray, y: np.ndarray, rgb: bool = False) -> None:
    Image = require_extra("PIL.Image", "image")
    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image)
        (picture.convert("RGB") if rgb else picture).save(folder / f"{i:05d}.png")


def test_image_folder_mnist_pngs_train_to_90_percent(mnist_dir, tmp_path):
    x_train, y_train, x_test, y_test = mnist_subset(mnist_dir)
    save_pngs(tmp_path / "digits" / "train", x_train, y_train)
    save_pngs(tmp_path / "digits" / "test", x_test, y_test)
    dataset = {"type": "image_folder", "path": str(tmp_path / "digits"), "color": "grayscale", "validation": 200}
    summary = train(mlp(dataset), tmp_path)
    assert summary["test_accuracy"] >= 0.90, summary
    assert nm.load_model(tmp_path / "run").architecture["class_names"] == [f"digit{d}" for d in range(10)]


def test_image_folder_resizes_converts_and_shuffles_once(tmp_path):
    require_extra("PIL.Image", "image")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 6, 8), dtype=np.uint8)
    y = np.arange(12) % 3
    save_pngs(tmp_path / "flat", x, y, rgb=True)  # <class>/* directly: no test split
    dataset = ImageFolder(str(tmp_path / "flat"), image_size=[3, 4], color="rgb")
    assert dataset.input_shape == (3, 4, 3) and dataset.class_names == ["digit0", "digit1", "digit2"]
    splits = dataset.load()
    assert set(splits) == {"train"} and len(splits["train"]) == 12
    images, labels = splits["train"].batch(np.arange(12))
    assert images.shape == (12, 3, 4, 3) and sorted(labels.tolist()) == sorted(y.tolist())
    assert labels.tolist() != sorted(labels.tolist())  # shuffled: validation = N holds every class
    same = ImageFolder(str(tmp_path / "flat"), color="grayscale")
    assert same.input_shape == (6, 8, 1)
    _files.clear_cache()
    again = ImageFolder(str(tmp_path / "flat"), image_size=[3, 4]).load()["train"].batch(np.arange(12))
    np.testing.assert_array_equal(again[1], labels)


def test_file_datasets_pass_the_kit_check(tmp_path):
    from numpyml_kit.testing import check_dataset

    np.savez(tmp_path / "d.npz", x_train=np.zeros((8, 4, 4), np.uint8), y_train=np.arange(8) % 2,
             x_test=np.zeros((2, 4, 4), np.uint8), y_test=np.array([0, 1]))
    check_dataset(lambda: NPZ(str(tmp_path / "d.npz")))
    write_blobs(tmp_path / "b.csv", 20, 0)
    check_dataset(lambda: CSV(str(tmp_path / "b.csv"), test_path=str(tmp_path / "b.csv")))


def test_the_readme_examples_run(tmp_path, monkeypatch):
    """README's "Your own data": examples/own_data/make_data.py, then experiments/{npz,csv,image_folder}.toml."""
    import runpy

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NUMPYML_DATA_DIR", raising=False)
    runpy.run_path(str(root / "examples" / "own_data" / "make_data.py"), run_name="__main__")
    names = ["npz", "csv"] + (["image_folder"] if (tmp_path / "shapes").is_dir() else [])
    for name in names:
        summary = nm.run(root / "experiments" / f"{name}.toml", output=tmp_path / f"run_{name}", progress=False).summary
        assert summary["test_accuracy"] >= 0.90, (name, summary)
    if "image_folder" not in names:
        require_extra("PIL.Image", "image")
