"""Hostile and degenerate dataset files (issue 15, items 7, 8, 12, 13, 22, 27, 30): memory bombs, sizes
that overflow, labels that overflow, empty splits, harmless pickles that were refused, and `validate`
checking the sizes a dataset declares. Every case is a clear UserError naming the file (or exit 2 with
one paragraph), never a traceback, never memory the file merely claims."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import address_space_cap, require_real_data
from idx_files import IMAGES_MAGIC, LABELS_MAGIC, SPLIT_FILES, write_dataset, write_idx
from numpyml_core import UserError
from numpyml_core.cli import app
from numpyml_datasets import cifar
from numpyml_datasets import mnist as mnist_module
from numpyml_datasets.cifar import CIFAR10, CIFAR100, RestrictedUnpickler, restricted_load
from numpyml_datasets.idx import read_idx_images
from numpyml_datasets.mnist import MNIST
from test_cifar import C10, dump, make_cifar10, make_cifar100, planar, images_for

REAL_DATA_DIR = os.environ.get("NUMPYML_DATA_DIR")
GiB = 1 << 30


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No NUMPYML_DATA_DIR, a cache in tmp_path, nothing parsed earlier in this process."""
    monkeypatch.delenv("NUMPYML_DATA_DIR", raising=False)
    monkeypatch.setenv("NUMPYML_CACHE_DIR", str(tmp_path / "cache"))
    mnist_module.clear_cache()
    cifar.clear_cache()
    yield
    mnist_module.clear_cache()
    cifar.clear_cache()


def header(magic: int, *dims: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


# a gzip member of 64 MiB of zeros (about 64 KB); concatenated members are one valid gzip stream
_ZEROS_MEMBER: list[bytes] = []


def zeros_member() -> bytes:
    if not _ZEROS_MEMBER:
        _ZEROS_MEMBER.append(gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0))
    return _ZEROS_MEMBER[0]


def write_bomb(path: Path, head: bytes, inflated: int) -> Path:
    """``head`` gzip-compressed, then about ``inflated`` bytes of compressed zeros: a file of a few MB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(gzip.compress(head, mtime=0))
        for _ in range(-(-inflated // (64 << 20))):
            out.write(zeros_member())
    return path


# --------------------------------------------------------------------------------------------
# item 7: gzip bombs behind a small IDX header
# --------------------------------------------------------------------------------------------
def test_gzip_bomb_after_a_small_header_is_refused_within_memory(tmp_path):
    # the header declares 2 images of 28x28 (1568 bytes); 1.5 GB of zeros follow in a ~1.5 MB file
    path = write_bomb(tmp_path / "train-images-idx3-ubyte.gz", header(IMAGES_MAGIC, 2, 28, 28), 3 * GiB // 2)
    assert path.stat().st_size < 4 << 20
    with address_space_cap(GiB):  # decompressing the whole file first cannot fit
        with pytest.raises(UserError) as info:
            read_idx_images(path)
    message = str(info.value)
    assert str(path) in message and "more data than the header declares" in message
    assert "2 x 28 x 28" in message


def test_gzip_bomb_in_a_dataset_folder_is_a_clear_error(tmp_path):
    write_dataset(tmp_path / "mnist")
    path = write_bomb(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", header(LABELS_MAGIC, 5), 3 * GiB // 2)
    with address_space_cap(GiB):
        with pytest.raises(UserError, match="more data than the header declares") as info:
            MNIST(download=False).load(str(tmp_path))
    assert str(path) in str(info.value)


def test_header_declaring_more_than_the_limit_is_refused_before_decompressing(tmp_path):
    # 3 GB declared and 1.5 GB really there: refused from the header alone
    path = write_bomb(tmp_path / "bomb.gz", header(IMAGES_MAGIC, 3_000_000, 1000, 1), 3 * GiB // 2)
    with address_space_cap(GiB):
        with pytest.raises(UserError) as info:
            read_idx_images(path)
    message = str(info.value)
    assert str(path) in message and "3000000 x 1000 x 1" in message and "limit" in message


def test_a_tiny_gzip_file_cannot_hold_what_its_header_declares(tmp_path):
    # 47 MB declared in a file of ~60 bytes: deflate inflates at most ~1032:1, so it is truncated for sure
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header(IMAGES_MAGIC, 60000, 28, 28) + bytes(100), mtime=0))
    with address_space_cap(256 << 20):
        with pytest.raises(UserError, match="truncated") as info:
            read_idx_images(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [True, False])
def test_streamed_reading_still_reads_good_files_and_refuses_trailing_bytes(tmp_path, compress):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    path = write_idx(tmp_path / "images", images, compress=compress)
    np.testing.assert_array_equal(read_idx_images(path), images)
    data = header(IMAGES_MAGIC, 3, 28, 28) + images.tobytes() + b"\x00"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    with pytest.raises(UserError, match="more data than the header declares|trailing bytes") as info:
        read_idx_images(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# item 12: dimensions whose product overflows int64
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
def test_dimensions_overflowing_int64_are_a_clear_error(tmp_path, compress):
    data = header(IMAGES_MAGIC, 2**31, 2**31, 4)  # 2^64 bytes: wraps to 0 in int64
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    with pytest.raises(UserError) as info:
        read_idx_images(path)
    message = str(info.value)
    assert str(path) in message and "2147483648 x 2147483648 x 4" in message
    assert str(2**64) in message


# --------------------------------------------------------------------------------------------
# item 8: CIFAR pickles declaring huge arrays
# --------------------------------------------------------------------------------------------
_RECONSTRUCT = np.ndarray((0,), dtype=np.uint8).__reduce__()[0]


class _HugeEmpty:
    """numpy's own _reconstruct asked for a 3 GB array (how a 165-byte pickle builds one)."""

    def __reduce__(self):
        return (_RECONSTRUCT, (np.ndarray, (1_000_000, 3072), b"B"))


class _HugeNdarray:
    """numpy.ndarray called directly with a huge shape."""

    def __reduce__(self):
        return (np.ndarray, ((1_000_000, 3072), np.dtype(np.uint8)))


def _huge_bytes_pickle() -> bytes:
    # protocol 4 BINBYTES8 claiming 3 GiB of bytes (the unpickler allocates them before reading)
    return b"\x80\x04}(C\x04data\x8e" + (3 * GiB).to_bytes(8, "little") + b"abc" + b"u."


def _huge_state_pickle() -> bytes:
    # a real array pickle whose state declares 1_000_000 x 3072 but holds 4 bytes of data
    raw = pickle.dumps({b"labels": [0], b"data": np.zeros((1, 4), np.uint8)}, protocol=3)
    return raw.replace(b"K\x01K\x04\x86", b"J\x40\x42\x0f\x00M\x00\x0c\x86")


@pytest.mark.parametrize("make", [
    lambda: pickle.dumps({b"labels": [0], b"data": _HugeEmpty()}, protocol=4),
    lambda: pickle.dumps({b"labels": [0], b"data": _HugeNdarray()}, protocol=4),
    _huge_bytes_pickle,
    _huge_state_pickle,
], ids=["reconstruct-shape", "ndarray-call", "bytes-length", "state-shape"])
def test_cifar_pickle_declaring_a_huge_array_is_refused_within_memory(tmp_path, make):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "data_batch_1"
    path.write_bytes(make())
    assert path.stat().st_size < 300
    with address_space_cap(GiB):
        with pytest.raises(UserError) as info:
            CIFAR10(download=False).load(str(tmp_path))
    message = str(info.value)
    assert str(path) in message
    assert "MemoryError" not in message  # refused from what it declares, not after trying
    assert "bytes" in message and ("declares" in message or "claims" in message or "refused" in message)


def test_cifar_pickle_with_an_object_array_is_refused_not_a_crash(tmp_path):
    # ndarray.__setstate__ with an object dtype and a short list crashes NumPy (SIGSEGV): refused
    # before NumPy sees it. Run in a child process so a crash cannot take the test session down.
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "data_batch_1"
    objects = np.empty((1, 3072), dtype=object)
    objects[:] = 0
    raw = pickle.dumps({b"labels": [0], b"data": objects}, protocol=3)
    raw = raw.replace(b"K\x01M\x00\x0c\x86", b"J\x40\x42\x0f\x00M\x00\x0c\x86", 1)  # claim 1e6 rows
    path.write_bytes(raw)
    code = textwrap.dedent(f"""
        from numpyml_core import UserError
        from numpyml_datasets.cifar import CIFAR10
        try:
            CIFAR10(download=False).load({str(tmp_path)!r})
        except UserError as exc:
            print("USERERROR", exc)
    """)
    env = {**os.environ, "NUMPYML_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "USERERROR" in result.stdout and str(path) in result.stdout and "object" in result.stdout


def test_array_pickles_still_load_in_every_protocol():
    array = (np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072) % 251)
    for protocol in (2, 3, 4, 5):
        for value in (array, np.asfortranarray(array), array.astype(">i4"), np.zeros((0, 3072), np.uint8)):
            loaded = restricted_load(pickle.dumps({"data": value}, protocol=protocol))["data"]
            assert type(loaded) is np.ndarray and loaded.dtype == value.dtype
            np.testing.assert_array_equal(loaded, value)


# --------------------------------------------------------------------------------------------
# item 13: labels that overflow int64
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [[0, 2**64, 1], [0, -(2**70), 1], np.array([0, 2**64 - 1, 1], np.uint64)],
                         ids=["list-big", "list-negative", "uint64-array"])
def test_cifar_label_overflowing_int64_is_a_clear_error(tmp_path, labels):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "data_batch_2"
    dump(path, {b"labels": labels, b"data": planar(images_for(0, 3))})
    with pytest.raises(UserError) as info:
        CIFAR10(download=False).load(str(tmp_path))
    message = str(info.value)
    assert str(path) in message and "'labels'" in message and "index 1" in message
    assert str(int(labels[1])) in message and "out of range 0..9" in message


# --------------------------------------------------------------------------------------------
# item 22: empty splits
# --------------------------------------------------------------------------------------------
def test_mnist_split_with_no_images_is_an_error(tmp_path):
    write_dataset(tmp_path / "mnist")
    images_name, labels_name = SPLIT_FILES["test"]
    write_idx(tmp_path / "mnist" / f"{images_name}.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "mnist" / f"{labels_name}.gz", np.zeros((0,), np.uint8))
    with pytest.raises(UserError) as info:
        MNIST(download=False).load(str(tmp_path))
    message = str(info.value)
    assert "MNIST test split" in message and "no images" in message and images_name in message


def test_cifar_split_with_no_images_is_an_error(tmp_path):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "test_batch"
    dump(path, {b"labels": [], b"data": np.zeros((0, 3072), np.uint8)})
    with pytest.raises(UserError) as info:
        CIFAR10(download=False).load(str(tmp_path))
    message = str(info.value)
    assert "CIFAR-10 test split" in message and "no images" in message and str(path) in message


EMPTY_TEST_SOURCE = '''
import os

import numpy as np
from numpyml_core import hookimpl
from numpyml_core.data import ArraySplit


class Hollow:
    """A dataset whose test split is empty."""

    input_shape = (2,)
    num_classes = 2
    class_names = ["a", "b"]

    def load(self, data_dir):
        x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
        test = 0 if os.environ.get("HOLLOW_EMPTY_TEST") else 10
        return {"train": ArraySplit(x, (x[:, 0] > 0).astype(np.int64)),
                "test": ArraySplit(x[:test], (x[:test, 0] > 0).astype(np.int64))}


@hookimpl
def numpyml_register_components(register):
    register("dataset", "fakeplug_hollow", Hollow)
'''

HOLLOW_EXPERIMENT = '''
name = "hollow"
[dataset]
type = "fakeplug_hollow"
[[model.layers]]
type = "dense"
units = 2
activation = "softmax"
[cost]
type = "cross_entropy"
[optimizer]
type = "sgd"
learning_rate = 0.1
[training]
epochs = 1
batch_size = 8
'''


def test_run_with_an_empty_test_split_exits_2(make_dist, tmp_path, monkeypatch):
    monkeypatch.setenv("HOLLOW_EMPTY_TEST", "1")
    make_dist("fakeplug-hollow", "0.0.1", {"hollow": "fakeplug_hollow"}, {"fakeplug_hollow": EMPTY_TEST_SOURCE})
    experiment = tmp_path / "hollow.toml"
    experiment.write_text(HOLLOW_EXPERIMENT)
    output = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(experiment), "--output", str(output), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "test_accuracy" not in result.output
    assert "'fakeplug_hollow'" in result.stderr and "'test' split" in result.stderr and "0 samples" in result.stderr
    assert not output.exists()  # refused before the run folder was made


def test_eval_on_an_empty_split_exits_2(make_dist, tmp_path, monkeypatch):
    make_dist("fakeplug-hollow", "0.0.1", {"hollow": "fakeplug_hollow"}, {"fakeplug_hollow": EMPTY_TEST_SOURCE})
    experiment = tmp_path / "hollow.toml"
    experiment.write_text(HOLLOW_EXPERIMENT)
    output = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(experiment), "--output", str(output), "--quiet"])
    assert result.exit_code == 0, result.output
    model = output / "model.safetensors"
    assert CliRunner().invoke(app, ["eval", str(model)]).exit_code == 0
    monkeypatch.setenv("HOLLOW_EMPTY_TEST", "1")
    result = CliRunner().invoke(app, ["eval", str(model), "--split", "test"])
    assert result.exit_code == 2, result.output
    assert "accuracy" not in result.stdout and "'test' split (0 samples)" in result.stderr


# --------------------------------------------------------------------------------------------
# item 27: Python 3 pickles of protocol 2 (bytes through _codecs.encode)
# --------------------------------------------------------------------------------------------
def test_cifar_resaved_with_protocol_2_loads_equal(tmp_path):
    expected = make_cifar10(tmp_path)
    folder = tmp_path / "cifar10" / C10
    reference = CIFAR10(normalize=False, download=False).load(str(tmp_path))
    for path in folder.iterdir():  # re-save every file as Python 3 does with protocol=2
        content = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps(content, protocol=2))
        assert b"_codecs" in path.read_bytes()
    cifar.clear_cache()
    splits = CIFAR10(normalize=False, download=False).load(str(tmp_path))
    for name in ("train", "test"):
        np.testing.assert_array_equal(splits[name].x, reference[name].x)
        np.testing.assert_array_equal(splits[name].y, reference[name].y)
    np.testing.assert_array_equal(splits["test"].x, expected["test"])


def test_cifar100_resaved_with_protocol_2_loads(tmp_path):
    expected = make_cifar100(tmp_path, protocol=2)
    splits = CIFAR100(normalize=False, download=False).load(str(tmp_path))
    np.testing.assert_array_equal(splits["train"].x, expected["train"])


class _Encode:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        import _codecs

        return (_codecs.encode, self.args)


@pytest.mark.parametrize("args", [("abc", "rot13"), ("abc", "utf-8"), ("abc",), (b"abc", "latin1"),
                                  ("abc", "latin1", "strict"), ("\u20ac", "latin1")])
def test_other_uses_of_codecs_stay_refused(tmp_path, args):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "data_batch_4"
    dump(path, {b"labels": [0, 1, 2], b"data": _Encode(*args)}, protocol=2)
    with pytest.raises(UserError) as info:
        CIFAR10(download=False).load(str(tmp_path))
    assert str(path) in str(info.value) and "_codecs.encode" in str(info.value)


def test_only_codecs_encode_is_allowed_from_codecs():
    import io

    for name in ("decode", "lookup", "register", "utf_8_decode", "escape_decode"):
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            RestrictedUnpickler(io.BytesIO(b"")).find_class("_codecs", name)


def test_real_cifar10_test_batch_resaved_with_protocol_2(tmp_path):
    source = Path(REAL_DATA_DIR or "/nonexistent") / "cifar10" / C10
    if not (source / "test_batch").is_file():
        require_real_data("no CIFAR-10 in NUMPYML_DATA_DIR")
    original = restricted_load((source / "test_batch").read_bytes())
    resaved = restricted_load(pickle.dumps(original, protocol=2))
    np.testing.assert_array_equal(resaved[b"data"], original[b"data"])
    assert resaved[b"labels"] == original[b"labels"]


# --------------------------------------------------------------------------------------------
# item 30: validate checks the sizes a dataset declares
# --------------------------------------------------------------------------------------------
def _experiment(tmp_path: Path, dataset: str, validation: int) -> Path:
    text = (Path(__file__).parent.parent / "experiments" / "mnist.toml").read_text()
    text = text.replace('type = "mnist"', f'type = "{dataset}"').replace(
        "validation = 10000", f"validation = {validation}")
    if dataset == "cifar100":
        text = text.replace("units = 10\n", "units = 100\n")
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("dataset, size", [("mnist", 60000), ("fashion_mnist", 60000), ("cifar10", 50000),
                                           ("cifar100", 50000)])
def test_validate_refuses_a_validation_split_as_large_as_the_training_set(tmp_path, dataset, size):
    experiment = _experiment(tmp_path, dataset, 70000)
    result = CliRunner().invoke(app, ["validate", str(experiment)])
    assert result.exit_code == 2, result.output
    assert "valid." not in result.stdout and "Traceback" not in result.output
    assert "validation = 70000" in result.stderr and f"{size:,}" in result.stderr and dataset in result.stderr
    experiment = _experiment(tmp_path, dataset, size)  # equal: nothing left to train on
    assert CliRunner().invoke(app, ["validate", str(experiment)]).exit_code == 2
    experiment = _experiment(tmp_path, dataset, size - 1)
    result = CliRunner().invoke(app, ["validate", str(experiment)])
    assert result.exit_code == 0, result.output


def test_datasets_declare_their_split_sizes():
    from numpyml_datasets.mnist import FashionMNIST

    assert MNIST.split_sizes == {"train": 60000, "test": 10000}
    assert FashionMNIST.split_sizes == {"train": 60000, "test": 10000}
    assert CIFAR10.split_sizes == {"train": 50000, "test": 10000}
    assert CIFAR100.split_sizes == {"train": 50000, "test": 10000}


def test_a_dataset_without_declared_sizes_is_not_checked_by_validate(blobs_experiment):
    experiment = blobs_experiment()
    text = experiment.read_text().replace("validation = 200", "validation = 100000")
    experiment.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(experiment)])
    assert result.exit_code == 0, result.output


def test_read_maybe_gzip_stops_at_its_limit(tmp_path):
    from numpyml_datasets.files import read_maybe_gzip

    path = write_bomb(tmp_path / "blob.gz", b"head", 3 * GiB // 2)
    with address_space_cap(GiB):
        with pytest.raises(UserError, match="inflates to more than the limit") as info:
            read_maybe_gzip(path, max_bytes=64 << 20)
    assert str(path) in str(info.value)
    small = tmp_path / "small.gz"
    small.write_bytes(gzip.compress(b"hello", mtime=0))
    assert read_maybe_gzip(small) == b"hello"


class _Bytes:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (bytes, self.args)


def test_bytes_is_allowed_only_without_arguments(tmp_path):
    assert restricted_load(pickle.dumps({"a": b""}, protocol=2)) == {"a": b""}  # written as bytes()
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "data_batch_4"
    dump(path, {b"labels": [0, 1, 2], b"data": _Bytes(3 * GiB)}, protocol=2)
    with address_space_cap(GiB):
        with pytest.raises(UserError, match=r"refused bytes\(3221225472,\)") as info:
            CIFAR10(download=False).load(str(tmp_path))
    assert str(path) in str(info.value)
