"""CIFAR-10 / CIFAR-100 loaders: small generated files in the official layout (hostile, corrupt and
malformed ones too), safe archive extraction, per-channel normalization, and the real CIFAR-10 copy."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import require_real_data
from numpyml_core import ConfigError, UserError, create
from numpyml_core.data import ArraySplit
from numpyml_kit.testing import check_dataset
from numpyml_datasets import cifar
from numpyml_datasets.cifar import CIFAR10, CIFAR100, RestrictedUnpickler, restricted_load, safe_extract

C10 = "cifar-10-batches-py"
C100 = "cifar-100-python"


# --------------------------------------------------------------------------------------------
# generated files in the official layout
# --------------------------------------------------------------------------------------------
def planar(images: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> the official rows (N, 3072): all red, then green, then blue, row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def dump(path: Path, obj, protocol: int = 3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def images_for(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def make_cifar10(root: Path, per_batch: int = 3, test: int = 4, names=None) -> dict[str, np.ndarray]:
    """``root/cifar10/cifar-10-batches-py/`` like the official files read under Python 3 (bytes
    keys, as a Python 2 pickle gives with encoding="bytes"). Returns the NHWC images by split."""
    folder = root / "cifar10" / C10
    names = names or [f"class{i}" for i in range(10)]
    dump(folder / "batches.meta", {b"label_names": [n.encode() for n in names], b"num_vis": 3072})
    train = []
    for i in range(1, 6):
        x = images_for(i, per_batch)
        train.append(x)
        labels = [(i + j) % 10 for j in range(per_batch)]
        dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": labels, b"data": planar(x)})
    x = images_for(99, test)
    dump(folder / "test_batch", {b"batch_label": b"testing batch", b"labels": list(range(test)), b"data": planar(x)})
    return {"train": np.concatenate(train), "test": x}


def make_cifar100(root: Path, train: int = 6, test: int = 3, protocol: int = 4) -> dict[str, np.ndarray]:
    folder = root / "cifar100" / C100
    dump(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                           "coarse_label_names": [f"coarse{i}" for i in range(20)]}, protocol)
    out = {}
    for name, n in (("train", train), ("test", test)):
        x = images_for(len(name), n)
        out[name] = x
        dump(folder / name, {"filenames": [f"{j}.png" for j in range(n)], "batch_label": name,
                             "fine_labels": [(7 * j) % 100 for j in range(n)],
                             "coarse_labels": [(3 * j) % 20 for j in range(n)], "data": planar(x)}, protocol)
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NUMPYML_CACHE_DIR", str(folder))
    monkeypatch.delenv("NUMPYML_DATA_DIR", raising=False)
    cifar.clear_cache()
    yield folder
    cifar.clear_cache()


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def test_cifar10_from_extracted_folder(tmp_path, cache):
    expected = make_cifar10(tmp_path / "data", names=["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
    dataset = CIFAR10(normalize=False, download=False)
    splits = dataset.load(str(tmp_path / "data"))
    assert sorted(splits) == ["test", "train"]
    assert dataset.class_names == list("abcdefghij")  # from batches.meta
    train, test = splits["train"], splits["test"]
    assert train.x.shape == (15, 32, 32, 3) and train.x.dtype == np.uint8
    np.testing.assert_array_equal(train.x, expected["train"])  # channel-planar rows became NHWC
    np.testing.assert_array_equal(train.y, [(i + j) % 10 for i in range(1, 6) for j in range(3)])
    assert len(test) == 4  # whatever the file holds
    x, y = test.batch(np.array([1, 3]))
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x, expected["test"][[1, 3]] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, [1, 3])
    check_dataset(lambda: CIFAR10(download=False), str(tmp_path / "data"))


def test_cifar10_pixel_layout(tmp_path, cache):
    """Official rows are 1024 red values, 1024 green, 1024 blue, each a row-major 32x32 image."""
    make_cifar10(tmp_path)
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, 0 * 1024 + 2 * 32 + 5] = 11  # red at (row 2, column 5)
    row[0, 1 * 1024 + 2 * 32 + 5] = 22  # green there
    row[0, 2 * 1024 + 31 * 32 + 0] = 33  # blue at (31, 0)
    dump(tmp_path / "cifar10" / C10 / "test_batch", {b"labels": [4], b"data": row})
    test = CIFAR10(normalize=False, download=False).load(str(tmp_path))["test"]
    assert test.x[0, 2, 5].tolist() == [11, 22, 0]
    assert test.x[0, 31, 0].tolist() == [0, 0, 33]
    assert int(test.x.sum()) == 66


def test_cifar10_normalization_applies_to_every_split(tmp_path, cache):
    expected = make_cifar10(tmp_path)
    splits = CIFAR10(download=False).load(str(tmp_path))  # normalize defaults to true
    mean, std = np.array(cifar.CIFAR10_MEAN), np.array(cifar.CIFAR10_STD)
    for name in ("train", "test"):
        x, _ = splits[name].batch(np.array([0, 1]))
        np.testing.assert_allclose(x, (expected[name][[0, 1]] / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
        part = splits[name].subset(1, 2)  # the core's validation split keeps the normalization
        np.testing.assert_allclose(part.batch(np.array([0]))[0], x[1:], rtol=1e-6)


def test_cifar100_fine_and_coarse(tmp_path, cache):
    expected = make_cifar100(tmp_path)
    fine = CIFAR100(download=False, normalize=False)
    assert fine.num_classes == 100 and len(fine.class_names) == 100
    splits = fine.load(str(tmp_path))
    assert fine.class_names[:2] == ["fine0", "fine1"]  # from meta
    np.testing.assert_array_equal(splits["train"].x, expected["train"])
    np.testing.assert_array_equal(splits["train"].y, [(7 * j) % 100 for j in range(6)])
    assert len(splits["test"]) == 3
    coarse = create("dataset", "cifar100", labels="coarse", download=False)
    assert coarse.num_classes == 20 and len(coarse.class_names) == 20
    assert coarse.class_names[0] == "aquatic_mammals"
    splits = coarse.load(str(tmp_path))
    assert coarse.class_names[-1] == "coarse19"
    np.testing.assert_array_equal(splits["test"].y, [0, 3, 6])
    check_dataset(lambda: CIFAR100(labels="coarse", download=False), str(tmp_path))
    with pytest.raises(ConfigError, match="labels"):
        create("dataset", "cifar100", labels="medium")


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_numpy_arrays_in_python3_protocols(protocol):
    array = np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072) % 251
    loaded = restricted_load(pickle.dumps({"data": array, "labels": [1, 2]}, protocol=protocol))
    np.testing.assert_array_equal(loaded["data"], array)
    assert loaded["labels"] == [1, 2]


def test_unpickling_leaves_no_garbage_cycle():
    """A batch's objects are freed as soon as the caller drops them, not at the next garbage collection
    (the unpickler's memo used to keep a cycle through find_class's bound method: ~330 MB of CIFAR-10)."""
    import gc

    data = pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [1, 2, 3, 4]}, protocol=2)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            restricted_load(data)
            restricted_load(OFFICIAL_STYLE_PICKLE)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_python2_pickle_like_the_official_files():
    loaded = restricted_load(OFFICIAL_STYLE_PICKLE)
    assert loaded[b"labels"] == [3, 7]
    assert loaded[b"data"].dtype == np.uint8 and loaded[b"data"].tolist() == [[1, 2, 3, 4]]


#: A Python 2 style protocol-2 pickle, as the official files are: {"data": uint8 array (1, 4), "labels": [3, 7]}
#: (py2 str written as SHORT_BINSTRING, NumPy 1's numpy.core.multiarray._reconstruct).
OFFICIAL_STYLE_PICKLE = (
    b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85"
    b"U\x01b\x87Rq\x05(K\x01K\x01K\x04\x86cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff"
    b"\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x04\x01\x02\x03\x04tbU\x06labelsq\x08]q\t(K\x03K\x07eu."
)


# --------------------------------------------------------------------------------------------
# hostile and malformed files
# --------------------------------------------------------------------------------------------
class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _WritesFile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload", [_RunsCode, _WritesFile])
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, cache, payload):
    make_cifar10(tmp_path)
    marker = tmp_path / "PWNED"
    hostile = {b"labels": [0, 1, 2], b"data": payload(marker)}
    path = tmp_path / "cifar10" / C10 / "data_batch_3"
    dump(path, hostile, protocol=3)
    assert pickle.loads(path.read_bytes()) is not None and marker.exists()  # the payload is real ...
    marker.unlink()
    with pytest.raises(UserError) as info:
        CIFAR10(download=False).load(str(tmp_path))
    assert not marker.exists()  # ... and the loader did not run it
    message = str(info.value)
    assert str(path) in message and "refused" in message and ("system" in message or "eval" in message)


def test_restricted_unpickler_allows_only_numpy_array_globals():
    for module, name in [("os", "system"), ("builtins", "eval"), ("numpy", "load"), ("subprocess", "Popen"),
                         ("numpy.lib.npyio", "load"), ("builtins", "getattr"), ("copyreg", "_reconstructor")]:
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            RestrictedUnpickler(io.BytesIO(b"")).find_class(module, name)
    allowed = {key for key in RestrictedUnpickler.ALLOWED}
    assert ("numpy", "ndarray") in allowed and ("numpy", "dtype") in allowed
    numpy_modules = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                     "numpy._core.numeric"}
    # besides NumPy: bytes as Python 3 pickles them in protocol 2 (checked further when called)
    assert {key for key in allowed if key[0] not in numpy_modules} == {
        ("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes")}


@pytest.mark.parametrize(
    "content, message",
    [
        ({b"labels": [0, 1, 2]}, "lacks the key 'data'"),
        ({b"data": planar(images_for(0, 3))}, "lacks the key 'labels'"),
        ({b"labels": [0, 1, 2], b"data": np.zeros((3, 1000), np.uint8)}, r"shape \(3, 1000\), expected \(N, 3072\)"),
        ({b"labels": [0, 1, 2], b"data": np.zeros((3, 32, 32, 3), np.uint8)}, "expected \\(N, 3072\\)"),
        ({b"labels": [0, 1, 2], b"data": np.zeros((3, 3072), np.float32)}, "dtype float32, expected uint8"),
        ({b"labels": [0, 1, 2], b"data": b"\x00" * 9216}, "expected a uint8 NumPy array"),
        ({b"labels": [0, 1], b"data": planar(images_for(0, 3))}, "3 images in 'data' but 2 labels"),
        ({b"labels": [0, 1, 10], b"data": planar(images_for(0, 3))}, "label 10 at index 2 is out of range 0..9"),
        ({b"labels": ["cat", "dog", "x"], b"data": planar(images_for(0, 3))}, "must be a list of integer labels"),
        ([1, 2, 3], "holds a list, expected a dict"),
    ],
)
def test_malformed_batch_names_the_file(tmp_path, cache, content, message):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "data_batch_2"
    dump(path, content)
    with pytest.raises(UserError, match=message) as info:
        CIFAR10(download=False).load(str(tmp_path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_batch_names_the_file(tmp_path, cache, damage):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "test_batch"
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"<html>not found</html>", "empty": b""}[damage])
    with pytest.raises(UserError, match="corrupt or truncated|not a CIFAR file") as info:
        CIFAR10(download=False).load(str(tmp_path))
    assert str(path) in str(info.value)


def test_bad_meta(tmp_path, cache):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar10" / C10 / "batches.meta"
    dump(path, {b"label_names": [b"a", b"b"]})
    with pytest.raises(UserError, match="holds 2 class names, expected 10"):
        CIFAR10(download=False).load(str(tmp_path))
    dump(path, {b"names": []})
    with pytest.raises(UserError, match="lacks the key 'label_names'"):
        CIFAR10(download=False).load(str(tmp_path))


def test_missing_files_say_where_they_were_looked_for(tmp_path, cache):
    make_cifar10(tmp_path)
    (tmp_path / "cifar10" / C10 / "data_batch_4").unlink()
    with pytest.raises(UserError) as info:
        CIFAR10(download=False).load(str(tmp_path))
    message = str(info.value)
    assert "data_batch_4" in message and str(tmp_path / "cifar10") in message and str(cache / "cifar10") in message
    assert "download = false" in message and "NUMPYML_DATA_DIR" in message


# --------------------------------------------------------------------------------------------
# archives: checksum, safe and atomic extraction, download
# --------------------------------------------------------------------------------------------
def make_archive(path: Path, source: Path, top: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source / top, arcname=top)


def patch_checksums(monkeypatch, cls, archive: Path) -> None:
    import hashlib

    raw = archive.read_bytes()
    monkeypatch.setattr(cls, "md5", hashlib.md5(raw).hexdigest())
    monkeypatch.setattr(cls, "sha256", hashlib.sha256(raw).hexdigest())


def test_archive_in_data_dir_is_checked_and_extracted_into_the_cache(tmp_path, cache, monkeypatch):
    made = tmp_path / "made"
    expected = make_cifar100(made)
    data = tmp_path / "data" / "cifar100"
    data.mkdir(parents=True)
    make_archive(data / "cifar-100-python.tar.gz", made / "cifar100", C100)
    with pytest.raises(UserError, match="md5 is"):  # not the official archive
        CIFAR100(download=False).load(str(tmp_path / "data"))
    patch_checksums(monkeypatch, CIFAR100, data / "cifar-100-python.tar.gz")
    splits = CIFAR100(download=False, normalize=False).load(str(tmp_path / "data"))
    np.testing.assert_array_equal(splits["train"].x, expected["train"])
    assert (cache / "cifar100" / C100 / "meta").is_file()
    assert [p.name for p in (cache / "cifar100").iterdir()] == [C100]  # no leftovers
    (data / "cifar-100-python.tar.gz").unlink()  # now found already extracted in the cache
    cifar.clear_cache()
    assert len(CIFAR100(download=False).load(str(tmp_path / "data"))["test"]) == 3


def test_download_checks_and_extracts(tmp_path, cache, monkeypatch):
    made = tmp_path / "made"
    make_cifar10(made)
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    make_archive(archive, made / "cifar10", C10)
    monkeypatch.setattr(CIFAR10, "url", archive.as_uri())
    monkeypatch.setattr(CIFAR10, "md5", "0" * 32)
    with pytest.raises(UserError, match="checksum"):
        CIFAR10().load(None)
    assert not (cache / "cifar10" / "cifar-10-python.tar.gz").exists()
    patch_checksums(monkeypatch, CIFAR10, archive)
    splits = CIFAR10().load(None)
    assert len(splits["train"]) == 15 and len(splits["test"]) == 4
    assert (cache / "cifar10" / "cifar-10-python.tar.gz").is_file()
    assert (cache / "cifar10" / C10 / "data_batch_5").is_file()


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


@pytest.mark.parametrize(
    "bad, reason",
    [
        (_file(f"{C10}/../../escaped.txt"), "contains '..'"),
        (_file("../escaped.txt"), "contains '..'"),
        (_file("/tmp/numpyml-escaped.txt"), "absolute path"),
        (_special(f"{C10}/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (_special(f"{C10}/hard", tarfile.LNKTYPE, f"{C10}/data_batch_1"), "hard link"),
        (_special(f"{C10}/dev", tarfile.CHRTYPE), "device"),
        (_special(f"{C10}/fifo", tarfile.FIFOTYPE), "device or fifo"),
        (_file("other-folder/data_batch_1"), "outside the expected folder"),
    ],
)
def test_hostile_archive_is_refused_and_leaves_nothing(tmp_path, bad, reason):
    archive = tmp_path / "evil.tar.gz"
    good = [_file(f"{C10}/data_batch_1", b"first"), _file(f"{C10}/batches.meta", b"meta")]
    _tar_with(archive, good + [bad] + [_file(f"{C10}/test_batch", b"last")])
    destination = tmp_path / "cache" / "cifar10"
    with pytest.raises(UserError, match=reason) as info:
        safe_extract(archive, C10, destination)
    assert str(archive) in str(info.value)
    assert list(destination.iterdir()) == []  # nothing half-extracted, no staging folder left
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "cache" / "escaped.txt").exists()
    assert not Path("/tmp/numpyml-escaped.txt").exists()


def test_truncated_archive(tmp_path):
    archive = tmp_path / "a.tar.gz"
    _tar_with(archive, [_file(f"{C10}/data_batch_1", os.urandom(100_000))])
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(UserError, match="corrupt or truncated"):
        safe_extract(archive, C10, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------------------------
# ArraySplit normalization (numpyml_core.data)
# --------------------------------------------------------------------------------------------
def test_array_split_normalization():
    x = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    y = np.array([0, 1])
    plain = ArraySplit(x, y)
    np.testing.assert_allclose(plain.batch(np.array([1]))[0], x[1:] / 255.0, rtol=1e-6)  # old API unchanged
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    split = ArraySplit(x, y, mean=mean, std=std)
    out, labels = split.batch(np.array([0, 1]))
    assert out.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_allclose(out, (x / 255.0 - mean) / np.array(std), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split.subset(1, 2).batch(np.array([0]))[0], out[1:], rtol=1e-6)
    scalar = ArraySplit(x.astype(np.float32), y, mean=1.0, std=2.0)  # features: scale 1
    np.testing.assert_allclose(scalar.batch(np.array([0]))[0], (x[:1] - 1.0) / 2.0)
    with pytest.raises(ValueError, match="both mean and std"):
        ArraySplit(x, y, mean=mean)
    with pytest.raises(ValueError, match="2 values but the inputs have 3 channels"):
        ArraySplit(x, y, mean=[0.0, 0.0], std=[1.0, 1.0])
    with pytest.raises(ValueError, match="greater than 0"):
        ArraySplit(x, y, mean=mean, std=[1.0, 0.0, 1.0])


# --------------------------------------------------------------------------------------------
# the real CIFAR-10 (NUMPYML_DATA_DIR=/work/shared/data)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def cifar10_dir() -> Path:
    value = os.environ.get("NUMPYML_DATA_DIR")
    if not value or not (Path(value) / "cifar10" / C10 / "data_batch_1").is_file():
        require_real_data("real CIFAR-10 not found: set NUMPYML_DATA_DIR to a folder holding "
                          f"cifar10/{C10}/ (see README)")
    return Path(value)


@pytest.mark.realdata
def test_real_cifar10(cifar10_dir, cache):
    dataset = CIFAR10(download=False)
    splits = dataset.load(str(cifar10_dir))
    assert dataset.class_names == cifar.CIFAR10_CLASSES
    train, test = splits["train"], splits["test"]
    assert train.x.shape == (50000, 32, 32, 3) and train.x.dtype == np.uint8
    assert np.bincount(train.y).tolist() == [5000] * 10
    assert test.x.shape[1:] == (32, 32, 3) and len(test) in (1000, 10000)  # the shared copy holds 1,000
    assert np.bincount(test.y, minlength=10).min() > 0.08 * len(test)
    # the published normalization constants are the training set's statistics
    sums, squares = np.zeros(3), np.zeros(3)
    for start in range(0, 50000, 5000):
        chunk = train.x[start:start + 5000].reshape(-1, 3).astype(np.float64) / 255.0
        sums += chunk.sum(axis=0)
        squares += (chunk * chunk).sum(axis=0)
    count = 50000 * 32 * 32
    mean = sums / count
    np.testing.assert_allclose(mean, cifar.CIFAR10_MEAN, atol=1e-4)
    np.testing.assert_allclose(np.sqrt(squares / count - mean**2), cifar.CIFAR10_STD, atol=1e-4)
    x, _ = train.batch(np.arange(0, 50000, 25))
    assert np.abs(x.mean(axis=(0, 1, 2))).max() < 0.05 and np.abs(x.std(axis=(0, 1, 2)) - 1).max() < 0.05
