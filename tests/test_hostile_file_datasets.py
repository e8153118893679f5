"""Hostile and broken user files for the npz, csv and image_folder datasets (issue 19): truncated and
lying npz files, wrong keys, ragged and non-numeric CSV, non-images in an image folder. Every case is one
clear UserError naming the file and what was expected (exit 2 from the CLI, no traceback), and never
memory a file merely claims."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import address_space_cap, require_extra
from numpyml_core import UserError
from numpyml_core.cli import app
from numpyml_datasets import _files
from numpyml_datasets.csvfile import CSV
from numpyml_datasets.imagefolder import ImageFolder
from numpyml_datasets.npz import NPZ

GiB = 1 << 30


@pytest.fixture(autouse=True)
def fresh_cache():
    _files.clear_cache()
    yield
    _files.clear_cache()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], dtype: str = "<u1") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def write_npz(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name + ".npy", data)
    return path


def good_members(n: int = 10) -> dict[str, bytes]:
    x = np.zeros((n, 4, 4), np.uint8)
    y = np.arange(n) % 2
    return {"x_train": npy_bytes(x), "y_train": npy_bytes(y), "x_test": npy_bytes(x[:2]), "y_test": npy_bytes(y[:2])}


def message(make) -> str:
    with pytest.raises(UserError) as info:
        dataset = make()
        dataset.input_shape, dataset.num_classes
        dataset.load()
    text = str(info.value)
    assert "\n" not in text.strip()  # one paragraph
    return text


# --------------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------------
def test_truncated_npz_names_the_file(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez(path, x_train=np.zeros((50, 8, 8), np.uint8), y_train=np.zeros(50, int),
             x_test=np.zeros((5, 8, 8), np.uint8), y_test=np.zeros(5, int))
    path.write_bytes(path.read_bytes()[:1500])
    text = message(lambda: NPZ(str(path)))
    assert str(path) in text and "truncated" in text


def test_npz_with_wrong_keys_lists_what_it_holds(tmp_path):
    path = write_npz(tmp_path / "keys.npz", {"images": npy_bytes(np.zeros((2, 2))), "labels": npy_bytes(np.zeros(2))})
    text = message(lambda: NPZ(str(path)))
    assert str(path) in text and "'x_train'" in text and "'images', 'labels'" in text and "Keras layout" in text


def test_npz_header_claiming_more_than_the_member_holds_is_refused_before_allocating(tmp_path):
    members = good_members()
    members["x_train"] = npy_header((60000, 28, 28)) + bytes(100)  # claims 47 MB, holds 100 bytes
    path = write_npz(tmp_path / "liar.npz", members)
    with address_space_cap(GiB):
        text = message(lambda: NPZ(str(path)))
    assert "(60000, 28, 28)" in text and "truncated or corrupt" in text and "'x_train'" in text


def test_npz_header_claiming_terabytes_is_refused(tmp_path):
    members = good_members()
    members["x_train"] = npy_header((1 << 40, 1 << 20)) + bytes(10)
    path = write_npz(tmp_path / "huge.npz", members)
    with address_space_cap(GiB):
        text = message(lambda: NPZ(str(path)))
    assert "more than the limit" in text and str(path) in text


def test_npz_compressed_member_declaring_more_than_deflate_can_give_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x_train=np.zeros((2000, 28, 28), np.uint8), y_train=np.zeros(2000, np.uint8),
                        x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    with address_space_cap(GiB):
        splits = NPZ(str(path)).load()  # a legitimate 1.5 MB of zeros inflates fine
    assert len(splits["train"]) == 2000


def test_npz_object_arrays_and_non_numeric_dtypes_are_refused_without_unpickling(tmp_path):
    members = good_members()
    members["y_train"] = npy_bytes(np.array([object()] * 10, dtype=object))
    path = write_npz(tmp_path / "pickle.npz", members)
    text = message(lambda: NPZ(str(path)))
    assert "'y_train'" in text and "object" in text.lower()


def test_npz_labels_out_of_range_and_shape_mismatches(tmp_path):
    members = good_members()
    members["y_test"] = npy_bytes(np.array([0, 7]))
    path = write_npz(tmp_path / "labels.npz", members)
    assert "out of range 0..1" in message(lambda: NPZ(str(path), num_classes=2))
    members = good_members()
    members["y_train"] = npy_bytes(np.arange(9) % 2)
    path = write_npz(tmp_path / "count.npz", members)
    assert "10 samples but 'y_train' holds 9 labels" in message(lambda: NPZ(str(path)))
    members = good_members()
    members["y_train"] = npy_bytes(np.full(10, 0.5))
    path = write_npz(tmp_path / "half.npz", members)
    assert "not a whole number" in message(lambda: NPZ(str(path)))


def test_npz_empty_split_and_missing_file(tmp_path):
    members = good_members()
    members["x_test"], members["y_test"] = npy_bytes(np.zeros((0, 4, 4), np.uint8)), npy_bytes(np.zeros(0, int))
    path = write_npz(tmp_path / "empty.npz", members)
    assert "test split" in message(lambda: NPZ(str(path))) and "no samples" in message(lambda: NPZ(str(path)))
    assert "not found" in message(lambda: NPZ(str(tmp_path / "nothing.npz")))


def test_not_a_zip_at_all(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("<html>not found</html>")
    text = message(lambda: NPZ(str(path)))
    assert str(path) in text and "not a readable .npz" in text


# --------------------------------------------------------------------------------------------
# csv
# --------------------------------------------------------------------------------------------
def test_ragged_csv_names_file_and_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n5,x\n")
    text = message(lambda: CSV(str(path)))
    assert f"{path}, line 4: 2 columns" in text and "has 3" in text


def test_non_numeric_cell_names_file_line_and_column(tmp_path):
    path = tmp_path / "words.csv"
    path.write_text("height,weight,label\n1.5,60,a\n1.7,sixty,b\n")
    text = message(lambda: CSV(str(path)))
    assert f"{path}, line 3, column 2 ('weight'): 'sixty' is not a number" in text


def test_csv_other_mistakes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n")
    assert "no column named 'kind'" in message(lambda: CSV(str(path), label_column="kind"))
    assert "outside the 3 columns" in message(lambda: CSV(str(path), label_column=5))
    test = tmp_path / "t.csv"
    test.write_text("a,b,label\n1,2,z\n")
    text = message(lambda: CSV(str(path), test_path=str(test)))
    assert f"{test}, line 2: label 'z' does not occur" in text
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert "holds no rows" in message(lambda: CSV(str(empty)))
    nan = tmp_path / "nan.csv"
    nan.write_text("a,label\nnan,0\n")
    assert "line 2: feature 'a' is nan" in message(lambda: CSV(str(nan)))
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 10)
    assert "not a UTF-8 text file" in message(lambda: CSV(str(binary)))
    wide = tmp_path / "wide.csv"
    wide.write_text("a,label\n" + "1" * 200_000 + ",0\n")
    assert "not a readable CSV" in message(lambda: CSV(str(wide)))


# --------------------------------------------------------------------------------------------
# image_folder
# --------------------------------------------------------------------------------------------
def image_tree(root: Path) -> None:
    Image = require_extra("PIL.Image", "image")
    for label in ("cat", "dog"):
        (root / "train" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((5, 5), 40 * i, np.uint8)).save(root / "train" / label / f"{i}.png")


def test_non_image_in_the_folder_is_named(tmp_path):
    image_tree(tmp_path)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    text = message(lambda: ImageFolder(str(tmp_path)))
    assert str(tmp_path / "train" / "dog" / "notes.txt") in text and "not an image" in text


def test_truncated_png_is_named(tmp_path):
    image_tree(tmp_path)
    png = tmp_path / "train" / "cat" / "1.png"
    noise = np.random.default_rng(0).integers(0, 256, (5, 5), dtype=np.uint8)
    require_extra("PIL.Image", "image").fromarray(noise).save(png)
    data = png.read_bytes()
    png.write_bytes(data[:len(data) - 30])  # the pixel data cut short
    text = message(lambda: ImageFolder(str(tmp_path)))
    assert str(png) in text and "truncated or corrupt" in text


def test_image_folder_layout_mistakes(tmp_path):
    image_tree(tmp_path)
    (tmp_path / "test" / "bird").mkdir(parents=True)
    assert "is a class the training folder" in message(lambda: ImageFolder(str(tmp_path)))
    (tmp_path / "test" / "bird").rmdir()
    assert "test split" in message(lambda: ImageFolder(str(tmp_path)))  # an empty test folder
    (tmp_path / "test").rmdir()
    (tmp_path / "train" / "stray.png").write_bytes(b"")
    assert "is a file directly in" in message(lambda: ImageFolder(str(tmp_path)))
    (tmp_path / "train" / "stray.png").unlink()
    Image = require_extra("PIL.Image", "image")
    Image.fromarray(np.zeros((7, 5), np.uint8)).save(tmp_path / "train" / "dog" / "big.png")
    text = message(lambda: ImageFolder(str(tmp_path)))
    assert "give image_size" in text and "big.png" in text
    assert len(ImageFolder(str(tmp_path), image_size=[5, 5]).load()["train"]) == 7


def test_image_header_claiming_a_giant_image_is_refused_before_decoding(tmp_path):
    image_tree(tmp_path)
    Image = require_extra("PIL.Image", "image")
    # a valid 1-bit PNG of 20000 x 20000 pixels compresses to a few kB; decoded as RGB it is 1.2 GB
    Image.new("1", (20000, 20000)).save(tmp_path / "train" / "cat" / "huge.png")
    with address_space_cap(GiB):
        text = message(lambda: ImageFolder(str(tmp_path), image_size=[5, 5]))
    assert "huge.png" in text


def test_folder_of_too_many_images_for_memory_is_refused(tmp_path, monkeypatch):
    image_tree(tmp_path)
    monkeypatch.setattr(_files, "MAX_DATA_BYTES", 100)
    text = message(lambda: ImageFolder(str(tmp_path), image_size=[5, 5]))
    assert "more than the limit" in text


# --------------------------------------------------------------------------------------------
# through the command line: exit 2, one paragraph, no traceback
# --------------------------------------------------------------------------------------------
EXPERIMENT = """
[dataset]
{dataset}
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "dense"
units = 2
activation = "softmax"
[cost]
type = "cross_entropy"
[optimizer]
type = "sgd"
[training]
epochs = 1
"""


CASES = ["truncated npz", "wrong keys", "ragged csv", "non-numeric csv", "non-image"]


# validate reads no pixels (only the first image's header), so a non-image is found by run
@pytest.mark.parametrize("command, case", [("validate", c) for c in CASES[:-1]] + [("run", c) for c in CASES])
def test_bad_files_exit_2_without_traceback(tmp_path, case, command):
    if case == "truncated npz":
        bad = tmp_path / "d.npz"
        np.savez(bad, x_train=np.zeros((50, 8, 8), np.uint8), y_train=np.zeros(50, int),
                 x_test=np.zeros((5, 8, 8), np.uint8), y_test=np.zeros(5, int))
        bad.write_bytes(bad.read_bytes()[:1500])
        dataset = f'type = "npz"\npath = "{bad}"'
    elif case == "wrong keys":
        bad = write_npz(tmp_path / "d.npz", {"images": npy_bytes(np.zeros((2, 2)))})
        dataset = f'type = "npz"\npath = "{bad}"'
    elif case in ("ragged csv", "non-numeric csv"):
        bad = tmp_path / "d.csv"
        bad.write_text("a,b,label\n1,2,0\n" + ("3,1\n" if case == "ragged csv" else "3,x,1\n"))
        dataset = f'type = "csv"\npath = "{bad}"'
    else:
        image_tree(tmp_path)
        bad = tmp_path / "train" / "cat" / "x.jpg"
        bad.write_bytes(b"GIF89a but not really")
        dataset = f'type = "image_folder"\npath = "{tmp_path}"'
    experiment = tmp_path / "e.toml"
    experiment.write_text(EXPERIMENT.format(dataset=dataset))
    args = [command, str(experiment)] + (["--output", str(tmp_path / "run"), "--quiet"] if command == "run" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(bad) in result.stderr
