"""The built-in datasets (MNIST, Fashion-MNIST), the IDX reader and the data helpers of the core.

Everything but the last two tests runs on small IDX files written here in the real format; the
download tests serve them from a local HTTP server on 127.0.0.1. The real-data tests read
``NUMPYML_DATA_DIR/mnist`` and Debian's ``/usr/share/datasets/fashion-mnist`` and skip when absent.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import require_real_data
from idx_files import SPLIT_FILES, idx_bytes, make_split, write_dataset, write_idx
from numpyml_core import UserError, create
from numpyml_core.data import ArraySplit
from numpyml_core.protocols import Dataset, Split
from numpyml_datasets.mnist import FashionMNIST, MNIST
from numpyml_datasets import files
from numpyml_datasets import mnist as mnist_module
from numpyml_datasets.idx import read_idx_images, read_idx_labels

# captured before the autouse fixture hides them from the other tests
REAL_DATA_DIR = os.environ.get("NUMPYML_DATA_DIR")
REAL_DEBIAN_DIR = mnist_module.DEBIAN_FASHION_MNIST_DIR

ALL_FILES = [f"{name}.gz" for pair in SPLIT_FILES.values() for name in pair]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No NUMPYML_DATA_DIR, a cache in tmp_path, and no Debian folder, unless a test sets them."""
    monkeypatch.delenv("NUMPYML_DATA_DIR", raising=False)
    monkeypatch.setenv("NUMPYML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "debian" / "fashion-mnist")
    return tmp_path


def assert_loaded(splits, arrays):
    assert set(splits) == {"train", "test"}
    for split, (images, labels) in arrays.items():
        assert isinstance(splits[split], ArraySplit)
        assert splits[split].x.dtype == np.uint8
        assert splits[split].x.shape == (len(images), 28, 28, 1)
        np.testing.assert_array_equal(splits[split].x[..., 0], images)
        np.testing.assert_array_equal(splits[split].y, labels)


# --------------------------------------------------------------------------------------------
# IDX parsing
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name_suffix", [".gz", ""])
def test_idx_round_trip_detects_gzip_by_content(tmp_path, compress, name_suffix):
    images = np.arange(2 * 3 * 7, dtype=np.uint8).reshape(2, 3, 7)  # dims come from the header
    labels = np.array([0, 9, 4], dtype=np.uint8)
    images_path = write_idx(tmp_path / f"images{name_suffix}", images, compress=compress)
    labels_path = write_idx(tmp_path / f"labels{name_suffix}", labels, compress=compress)
    assert (images_path.read_bytes()[:2] == b"\x1f\x8b") == compress

    read_images = read_idx_images(images_path)
    assert read_images.dtype == np.uint8 and read_images.shape == (2, 3, 7)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_idx_labels(labels_path, num_classes=10), labels)


def _corrupt_case(tmp_path, case):
    """(path, reader, words the message must contain) for one kind of broken file."""
    images, labels = make_split(3)
    good_images, good_labels = idx_bytes(images), idx_bytes(labels)
    path = tmp_path / f"{case}-file"
    if case == "bad magic":
        path.write_bytes(gzip.compress(idx_bytes(images, magic=0x00000802)))
        return path, read_idx_images, ["bad magic number 0x00000802, expected 0x00000803", "IDX image file"]
    if case == "labels given as images":
        path.write_bytes(good_labels)
        return path, read_idx_images, ["bad magic number 0x00000801", "swapped"]
    if case == "truncated data":
        path.write_bytes(gzip.compress(good_images[:-100]))
        return path, read_idx_images, ["truncated", "3 x 28 x 28", str(len(good_images) - 100)]
    if case == "truncated header":
        path.write_bytes(good_images[:9])
        return path, read_idx_images, ["truncated", "header"]
    if case == "empty":
        path.write_bytes(b"")
        return path, read_idx_labels, ["too short", "0 bytes"]
    if case == "trailing garbage":
        path.write_bytes(good_labels + b"garbage")
        return path, read_idx_labels, ["trailing bytes", "header says 3"]
    if case == "header disagrees":
        data = bytearray(good_images)
        data[4:8] = (5).to_bytes(4, "big")  # claims 5 images, holds 3
        path.write_bytes(bytes(data))
        return path, read_idx_images, ["truncated", "5 x 28 x 28"]
    if case == "bad gzip":
        path.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"this is not deflate data" * 10)
        return path, read_idx_images, ["corrupt or truncated gzip"]
    if case == "truncated gzip":
        path.write_bytes(gzip.compress(good_images)[:-50])
        return path, read_idx_images, ["corrupt or truncated gzip"]
    if case == "labels out of range":
        path.write_bytes(idx_bytes(np.array([1, 2, 10, 3], dtype=np.uint8)))
        return path, lambda p: read_idx_labels(p, num_classes=10), ["label 10 at index 2", "out of range 0..9"]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "bad magic", "labels given as images", "truncated data", "truncated header", "empty",
        "trailing garbage", "header disagrees", "bad gzip", "truncated gzip", "labels out of range",
    ],
)
def test_corrupt_files_give_user_errors_naming_file_and_problem(tmp_path, case):
    path, reader, words = _corrupt_case(tmp_path, case)
    with pytest.raises(UserError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message
    assert "\n" not in message


def test_label_count_must_match_image_count(tmp_path):
    folder = tmp_path / "data" / "mnist"
    write_dataset(folder, n_train=12)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    with pytest.raises(UserError, match="12 images but .* 11 labels") as info:
        MNIST(download=False).load(str(tmp_path / "data"))
    assert "train-images-idx3-ubyte.gz" in str(info.value) and "train-labels-idx1-ubyte.gz" in str(info.value)


def test_images_of_the_wrong_size_are_rejected(tmp_path):
    folder = tmp_path / "data" / "mnist"
    write_dataset(folder)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((5, 32, 32), dtype=np.uint8))
    with pytest.raises(UserError, match="images are 32x32, expected 28x28 for MNIST"):
        MNIST(download=False).load(str(tmp_path / "data"))


def test_corrupt_file_in_the_cache_says_delete_to_download_again(tmp_path):
    folder = tmp_path / "cache" / "mnist"
    write_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bbroken")
    with pytest.raises(UserError, match="delete it to download it again"):
        MNIST(download=False).load(None)


# --------------------------------------------------------------------------------------------
# the dataset components
# --------------------------------------------------------------------------------------------
def test_mnist_through_the_registry(tmp_path):
    arrays = write_dataset(tmp_path / "data" / "mnist", n_train=20, n_test=10)
    ds = create("dataset", "mnist", download=False)
    assert isinstance(ds, MNIST) and isinstance(ds, Dataset)
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    assert ds.class_names == [str(d) for d in range(10)]
    splits = ds.load(str(tmp_path / "data"))
    assert_loaded(splits, arrays)
    assert isinstance(splits["train"], Split)
    x, y = splits["train"].batch(np.array([0, 5, 19]))
    assert x.dtype == np.float32 and x.shape == (3, 28, 28, 1) and 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int64
    np.testing.assert_allclose(x[1, ..., 0], arrays["train"][0][5] / 255.0, rtol=1e-6)


def test_fashion_mnist_through_the_registry(tmp_path):
    arrays = write_dataset(tmp_path / "data" / "fashion-mnist", compress=False)  # raw names, no .gz
    ds = create("dataset", "fashion_mnist", download=False)
    assert isinstance(ds, FashionMNIST)
    assert ds.class_names == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    assert_loaded(ds.load(str(tmp_path / "data")), arrays)


def test_download_parameter_is_the_config_schema():
    from numpyml_core.config import describe_params

    assert describe_params(MNIST) == [("download", "bool", "True")]
    assert describe_params(FashionMNIST) == [("download", "bool", "True")]


def test_gzip_data_under_a_raw_name_and_raw_data_under_a_gz_name(tmp_path):
    folder = tmp_path / "data" / "mnist"
    images, labels = make_split(4)
    write_idx(folder / "train-images-idx3-ubyte", images, compress=True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels, compress=False)
    test_images, test_labels = make_split(2, seed=3)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_images)
    write_idx(folder / "t10k-labels-idx1-ubyte", test_labels)
    splits = MNIST(download=False).load(str(tmp_path / "data"))
    assert_loaded(splits, {"train": (images, labels), "test": (test_images, test_labels)})


def test_loading_twice_parses_once(tmp_path, monkeypatch):
    write_dataset(tmp_path / "data" / "mnist")
    calls = []
    original = mnist_module.read_idx_images
    monkeypatch.setattr(mnist_module, "read_idx_images", lambda path: calls.append(path) or original(path))
    first = MNIST(download=False).load(str(tmp_path / "data"))
    second = create("dataset", "mnist", download=False).load(str(tmp_path / "data"))
    assert len(calls) == 2  # train and test images, once each
    assert second["train"].x is first["train"].x
    assert not first["train"].x.flags.writeable  # shared arrays cannot be changed by accident


# --------------------------------------------------------------------------------------------
# where files are looked for
# --------------------------------------------------------------------------------------------
def test_data_dir_argument_beats_environment(tmp_path, monkeypatch):
    from_arg = write_dataset(tmp_path / "arg" / "mnist", seed=1)
    from_env = write_dataset(tmp_path / "env" / "mnist", seed=2)
    monkeypatch.setenv("NUMPYML_DATA_DIR", str(tmp_path / "env"))
    assert_loaded(MNIST(download=False).load(str(tmp_path / "arg")), from_arg)
    assert_loaded(MNIST(download=False).load(None), from_env)


def test_fashion_search_order_data_dir_then_debian_then_cache(tmp_path, monkeypatch):
    in_cache = write_dataset(tmp_path / "cache" / "fashion-mnist", seed=1)
    assert_loaded(FashionMNIST(download=False).load(None), in_cache)

    debian = tmp_path / "debian-share" / "fashion-mnist"
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST_DIR", debian)
    in_debian = write_dataset(debian, seed=2)
    assert_loaded(FashionMNIST(download=False).load(None), in_debian)

    in_data_dir = write_dataset(tmp_path / "data" / "fashion_mnist", seed=3)  # underscore spelling
    monkeypatch.setenv("NUMPYML_DATA_DIR", str(tmp_path / "data"))
    assert_loaded(FashionMNIST(download=False).load(None), in_data_dir)


def test_mnist_ignores_the_fashion_folders(tmp_path):
    write_dataset(tmp_path / "data" / "fashion-mnist")
    with pytest.raises(UserError, match="MNIST: files"):
        MNIST(download=False).load(str(tmp_path / "data"))


def test_missing_files_without_download_list_every_place_looked(tmp_path):
    write_dataset(tmp_path / "data" / "mnist")
    (tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError) as info:
        MNIST(download=False).load(str(tmp_path / "data"))
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz not found" in message
    assert "train-images" not in message  # only the missing file is named
    assert str(tmp_path / "data" / "mnist") in message
    assert f"{tmp_path / 'cache' / 'mnist'} (does not exist)" in message
    assert "--data-dir" in message and "NUMPYML_DATA_DIR" in message and "download = true" in message
    assert "\n" not in message


def test_missing_fashion_files_mention_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPYML_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(UserError) as info:
        FashionMNIST(download=False).load(None)
    message = str(info.value)
    for name in ALL_FILES:
        assert name in message
    for folder in (
        tmp_path / "data" / "fashion-mnist",
        tmp_path / "data" / "fashion_mnist",
        tmp_path / "debian" / "fashion-mnist",
        tmp_path / "cache" / "fashion-mnist",
    ):
        assert str(folder) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_files_directly_in_the_data_dir_get_a_hint(tmp_path):
    write_dataset(tmp_path / "data")
    with pytest.raises(UserError, match="itself holds train-images-idx3-ubyte: move the files into"):
        MNIST(download=False).load(str(tmp_path / "data"))


def test_search_directories_helper(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPYML_DATA_DIR", str(tmp_path / "env"))
    dirs = files.search_directories(("a", "b"), None, system_dirs=["/sys-dir"])
    assert dirs == [tmp_path / "env" / "a", tmp_path / "env" / "b", Path("/sys-dir"), tmp_path / "cache" / "a"]
    assert files.search_directories(("a",), tmp_path / "arg", cache=False) == [tmp_path / "arg" / "a"]
    (tmp_path / "env" / "b").mkdir(parents=True)
    (tmp_path / "env" / "b" / "f").write_text("x")
    assert files.find_file(["f.gz", "f"], dirs) == tmp_path / "env" / "b" / "f"
    assert files.find_file(["g"], dirs) is None


# --------------------------------------------------------------------------------------------
# downloading
# --------------------------------------------------------------------------------------------
class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        mode, body = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) * (2 if mode in ("short", "stall") else 1)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if mode == "stall":
            self.server.release.wait(5)
        # "short": return now, and HTTP/1.0 closes the connection before Content-Length bytes

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """A local HTTP server; ``server.routes["/path"] = (mode, bytes)``, ``server.url``."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "*")
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    httpd.release = threading.Event()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def assert_no_leftovers(folder: Path, allowed: set[str] = frozenset()):
    assert {p.name for p in folder.iterdir()} == set(allowed)


def test_download_with_matching_checksums(tmp_path, server):
    body = os.urandom(3 * 1024 * 1024 + 17)
    server.routes["/data.bin"] = ("ok", body)
    destination = tmp_path / "dl" / "sub" / "data.bin"
    result = files.download(
        f"{server.url}/data.bin", destination, md5(body), sha256=hashlib.sha256(body).hexdigest()
    )
    assert result == destination and destination.read_bytes() == body
    assert_no_leftovers(destination.parent, {"data.bin"})


def test_download_from_a_file_url(tmp_path):
    source = tmp_path / "source.gz"
    source.write_bytes(b"payload")
    destination = files.download(source.as_uri(), tmp_path / "out" / "x.gz", md5(b"payload"))
    assert destination.read_bytes() == b"payload"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_downloaded_files_follow_the_umask(tmp_path, umask):
    """A downloaded data file gets the mode the umask gives, like every file numpyml writes (not
    ``tempfile.mkstemp``'s 0600, which the rename would keep)."""
    source = tmp_path / "source.gz"
    source.write_bytes(b"payload")
    previous = os.umask(umask)
    try:
        destination = files.download(source.as_uri(), tmp_path / "out" / "x.gz", md5(b"payload"))
    finally:
        os.umask(previous)
    assert destination.stat().st_mode & 0o777 == 0o666 & ~umask


def test_download_checksum_mismatch_deletes_the_file(tmp_path, server):
    server.routes["/data.bin"] = ("ok", b"not what you expected")
    destination = tmp_path / "dl" / "data.bin"
    with pytest.raises(UserError, match="failed its checksum: md5 is .* expected 0123") as info:
        files.download(f"{server.url}/data.bin", destination, "0123456789abcdef0123456789abcdef")
    assert f"{server.url}/data.bin" in str(info.value)
    assert_no_leftovers(destination.parent)


def test_failed_download_keeps_an_existing_file(tmp_path, server):
    server.routes["/data.bin"] = ("ok", b"new")
    destination = tmp_path / "data.bin"
    destination.write_bytes(b"old")
    with pytest.raises(UserError):
        files.download(f"{server.url}/data.bin", destination, md5(b"other"))
    assert destination.read_bytes() == b"old"
    assert not list(tmp_path.glob(".data.bin.*"))  # no temporary file left behind


@pytest.mark.parametrize("checksum", [True, False])
def test_interrupted_download_leaves_no_file(tmp_path, server, checksum):
    body = b"x" * 5000
    server.routes["/data.bin"] = ("short", body)  # announces 10000 bytes, sends 5000, closes
    destination = tmp_path / "dl" / "data.bin"
    with pytest.raises(UserError, match="interrupted: received 5000 of 10000 bytes"):
        files.download(f"{server.url}/data.bin", destination, md5(body * 2) if checksum else None)
    assert_no_leftovers(destination.parent)


def test_stalled_download_times_out_and_leaves_no_file(tmp_path, server):
    server.routes["/data.bin"] = ("stall", b"y" * 1000)
    destination = tmp_path / "dl" / "data.bin"
    with pytest.raises(UserError, match="cannot download .*timed out"):
        files.download(f"{server.url}/data.bin", destination, None, timeout=0.3)
    assert_no_leftovers(destination.parent)


def test_download_http_error_and_unreachable_server(tmp_path, server):
    destination = tmp_path / "dl" / "data.bin"
    with pytest.raises(UserError, match="HTTP 404"):
        files.download(f"{server.url}/missing.bin", destination, None)
    with pytest.raises(UserError, match="cannot download"):
        files.download("http://127.0.0.1:9/nothing", destination, None, timeout=2)  # discard port
    assert_no_leftovers(destination.parent)


def _serve_dataset(tmp_path, server, folder_name="official") -> dict:
    """Official-looking .gz files on the server; returns their arrays and md5s."""
    arrays = write_dataset(tmp_path / folder_name)
    checksums = {}
    for name in ALL_FILES:
        body = (tmp_path / folder_name / name).read_bytes()
        server.routes[f"/mnist/{name}"] = ("ok", body)
        checksums[name] = md5(body)
    return {"arrays": arrays, "md5": checksums}


def test_dataset_downloads_missing_files_into_the_cache(tmp_path, server, monkeypatch):
    served = _serve_dataset(tmp_path, server)
    monkeypatch.setattr(MNIST, "base_url", f"{server.url}/mnist/")
    monkeypatch.setattr(MNIST, "md5", served["md5"])
    cache = tmp_path / "cache" / "mnist"
    cache.mkdir(parents=True)
    (tmp_path / "official" / "train-images-idx3-ubyte.gz").rename(cache / "train-images-idx3-ubyte.gz")
    server.routes.pop("/mnist/train-images-idx3-ubyte.gz")  # already cached: must not be fetched

    splits = create("dataset", "mnist").load(None)  # download defaults to true
    assert_loaded(splits, served["arrays"])
    assert_no_leftovers(cache, set(ALL_FILES))


def test_dataset_download_with_bad_checksum_leaves_nothing(tmp_path, server, monkeypatch):
    served = _serve_dataset(tmp_path, server)
    monkeypatch.setattr(MNIST, "base_url", f"{server.url}/mnist/")
    monkeypatch.setattr(MNIST, "md5", {**served["md5"], "t10k-images-idx3-ubyte.gz": "0" * 32})
    with pytest.raises(UserError) as info:
        MNIST().load(None)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "checksum" in message
    assert "Looked in" in message and "--data-dir" in message
    assert not (tmp_path / "cache" / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in (tmp_path / "cache" / "mnist").iterdir() if p.name.startswith(".")]


def test_download_false_never_touches_the_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(files, "download", no_network)
    with pytest.raises(UserError, match="downloading is switched off"):
        MNIST(download=False).load(None)


# --------------------------------------------------------------------------------------------
# the real files
# --------------------------------------------------------------------------------------------
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist(monkeypatch):
    if not REAL_DATA_DIR or not (Path(REAL_DATA_DIR) / "mnist").is_dir():
        require_real_data("real MNIST not found: set NUMPYML_DATA_DIR to a folder with mnist/")
    monkeypatch.setenv("NUMPYML_DATA_DIR", REAL_DATA_DIR)
    splits = create("dataset", "mnist", download=False).load(None)
    train, test = splits["train"], splits["test"]
    assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)
    assert train.x.dtype == np.uint8 and test.x.dtype == np.uint8
    assert np.bincount(train.y, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(test.y, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert train.y[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits
    x, _ = train.batch(np.arange(100))
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0


def test_real_fashion_mnist_from_debian(monkeypatch):
    if not REAL_DEBIAN_DIR.is_dir():
        require_real_data(f"Fashion-MNIST not installed in {REAL_DEBIAN_DIR}: apt-get install dataset-fashion-mnist")
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST_DIR", REAL_DEBIAN_DIR)
    splits = create("dataset", "fashion_mnist", download=False).load(None)
    train, test = splits["train"], splits["test"]
    assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)
    assert train.x.dtype == np.uint8 and test.x.dtype == np.uint8
    assert np.bincount(train.y, minlength=10).tolist() == [6000] * 10
    assert np.bincount(test.y, minlength=10).tolist() == [1000] * 10
    assert train.y[:5].tolist() == [9, 0, 0, 3, 0]  # ankle boot, T-shirt/top, ...
