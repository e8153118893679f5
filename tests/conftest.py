"""Shared fixtures: fake installed distributions, a fresh plugin manager, small data, optional extras."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from numpyml_core import hookimpl
from numpyml_core import plugins as plugins_module

from blobs import EXPERIMENT, SOURCE


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Every test starts with the process-wide plugin manager reset."""
    plugins_module.set_plugin_manager(None)
    yield
    plugins_module.set_plugin_manager(None)


@contextlib.contextmanager
def address_space_cap(headroom: int = 6 << 30):
    """While the block runs, cap this process's address space at what it maps now plus ``headroom`` bytes.

    A hostile size (``units = 67108864``, a gzip bomb, a pickle declaring a huge array) asks for
    gigabytes: Linux grants them (overcommit) and the machine's OOM killer, not numpyml, ends the
    process filling them, with the whole test session (seen in CI). Under the cap such an allocation
    raises MemoryError at once, so a test sees what numpyml does instead of the machine dying; a
    smaller headroom makes a test fail if numpyml allocates what the input merely claims."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: no overcommit to guard against here
        yield
        return
    cap = mapped + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture
def memory_cap():
    """The test runs under ``address_space_cap()``: its process may map at most 6 GiB more."""
    with address_space_cap():
        yield


def write_dist(root: Path, name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """A fake installed distribution in ``root``: a dist-info folder with ``numpyml`` entry points, and modules."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{ep} = {module}" for ep, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[numpyml]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(module, None)
    return root


@contextlib.contextmanager
def site_for_workers(root: Path) -> Iterator[Path]:
    """``root`` on ``sys.path`` and on ``PYTHONPATH`` (worker processes and Ray see it) within the block."""
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(root), old_path] if p)
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path


@pytest.fixture
def make_dist(tmp_path, monkeypatch):
    """Write a fake installed distribution (a dist-info folder and modules) and put it on sys.path.

    ``make_dist(name, version, entry_points={"ep": "module"}, modules={"module": "source"})``
    returns the folder (usable as PYTHONPATH for subprocesses).
    """
    root = tmp_path / "site"
    root.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(root))

    def make(name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
        return write_dist(root, name, version, entry_points, modules)

    yield make
    for module in list(sys.modules):
        if module.startswith("fakeplug"):
            del sys.modules[module]


@pytest.fixture
def blobs_experiment(make_dist, tmp_path):
    """Install the fake blobs dataset plugin (``blobs.SOURCE``) and return a writer of experiment files for it.

    ``blobs_experiment(extra="", base=EXPERIMENT, name="blobs")`` writes ``base`` cut to 2 epochs, with the TOML
    ``extra`` appended, to ``tmp_path / f"{name}.toml"`` and returns that path.
    """
    make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs"}, {"fakeplug_blobs": SOURCE})

    def write(extra: str = "", base: str = EXPERIMENT, name: str = "blobs") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(base.replace("epochs = 3", "epochs = 2") + extra)
        return path

    return write


def require_real_data(reason: str) -> None:
    """Skip a real-data test with ``reason``, or fail it in CI (``NUMPYML_REQUIRE_REAL_DATA=1``)."""
    if os.environ.get("NUMPYML_REQUIRE_REAL_DATA"):
        pytest.fail(f"{reason} (NUMPYML_REQUIRE_REAL_DATA is set, so this is an error, not a skip)")
    pytest.skip(reason)


def require_extra(module: str, extra: str = "plot"):
    """Import an optional dependency; skip without it locally, fail in CI (NUMPYML_REQUIRE_REAL_DATA=1)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        require_real_data(f"{module} is not installed (pip install 'numpyml[{extra}]')")


def data_dir() -> Path | None:
    value = os.environ.get("NUMPYML_DATA_DIR")
    if value and (Path(value) / "mnist" / "train-images-idx3-ubyte.gz").exists():
        return Path(value)
    return None


@pytest.fixture
def mnist_dir() -> Path:
    folder = data_dir()
    if folder is None:
        require_real_data("real MNIST not found: set NUMPYML_DATA_DIR to a folder holding mnist/ (see README)")
    return folder


FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def fashion_available() -> None:
    folder = data_dir()
    if not (FASHION_DEBIAN / "train-images-idx3-ubyte.gz").exists() and not (
        folder and (folder / "fashion-mnist").is_dir()
    ):
        require_real_data("real Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or put "
                          "fashion-mnist/ in NUMPYML_DATA_DIR")


class Recorder:
    """A training callback that records the epochs whose end it saw (given to ``nm.run`` or
    registered on a run): what a test checks to know which run's hooks reached it."""

    def __init__(self):
        self.epochs: list[int] = []

    @hookimpl
    def numpyml_on_epoch_end(self, run, epoch, metrics):
        self.epochs.append(epoch)


class InterruptAt:
    """Asks for a stop at step ``step``, as the first Ctrl-C does (or raises KeyboardInterrupt, as a second does)."""

    def __init__(self, step: int, raise_now: bool = False):
        self.step = step
        self.raise_now = raise_now

    @hookimpl
    def numpyml_on_batch_end(self, run):
        if run.step == self.step:
            if self.raise_now:
                raise KeyboardInterrupt
            run.control.interrupt_requested = True
