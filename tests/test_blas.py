"""numpyml_conv.parts: splitting a batch into thread parts, and the BLAS thread limits (threadpoolctl) around them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from numpyml_core.plugin_api import share_ranges
from threadpoolctl import threadpool_limits

from numpyml_conv.parts import blas_thread_count, one_blas_thread, parallel_parts, parallel_threads


@pytest.mark.parametrize("n, parts, expected", [
    (7, 3, [(0, 3), (3, 5), (5, 7)]),
    (2, 4, [(0, 1), (1, 2)]),
    (5, 1, [(0, 5)]),
    (6, 2, [(0, 3), (3, 6)]),
])
def test_split_is_contiguous_and_balanced(n, parts, expected):
    assert share_ranges(n, parts) == expected


def test_parallel_parts_runs_every_part_once_in_order_on_threads():
    seen = []
    lock = threading.Lock()
    together = threading.Barrier(3, timeout=30)  # passes only if the three parts run at the same time

    def part(k, start, stop):
        with lock:
            seen.append((k, start, stop, threading.current_thread().name))
        together.wait()
        return (start, stop)

    assert parallel_parts(part, 10, parts=3) == [(0, 4), (4, 7), (7, 10)]
    names = {k: name for k, _, _, name in seen}
    assert sorted(names) == [0, 1, 2]
    assert names[0] == threading.current_thread().name  # part 0 on the calling thread
    assert names[1] != names[0] and names[2] != names[0] and names[1] != names[2]


def test_parts_see_one_blas_thread_and_the_limit_comes_back():
    before = parallel_threads()
    inside = parallel_parts(lambda k, start, stop: parallel_threads(), 4, parts=2)
    assert inside == [1, 1]
    assert parallel_threads() == before
    with threadpool_limits(1, user_api="blas"):  # what the sync strategy does around its share
        assert parallel_threads() == 1
        assert share_ranges(4, parallel_threads()) == [(0, 4)]
    assert parallel_threads() == before


def test_one_blas_thread_restores_the_count():
    before = blas_thread_count()
    with one_blas_thread():
        assert blas_thread_count() in (1, None)
    assert blas_thread_count() == before


def test_an_error_in_one_part_is_raised_after_every_part_finished():
    finished = []

    def part(k, start, stop):
        if k == 1:
            raise ValueError("part one failed")
        time.sleep(0.05)  # still running when part one has failed
        finished.append(k)

    with pytest.raises(ValueError, match="part one failed"):
        parallel_parts(part, 3, parts=3)
    assert sorted(finished) == [0, 2]
    assert parallel_parts(lambda k, start, stop: k, 3, parts=3) == [0, 1, 2]  # the pool still works


def test_parts_write_disjoint_slices_of_one_result():
    x = np.arange(1000, dtype=np.float32)
    out = np.empty_like(x)

    def part(k, start, stop):
        np.multiply(x[start:stop], 2, out=out[start:stop])

    parallel_parts(part, x.size, parts=3)
    np.testing.assert_array_equal(out, 2 * x)


@pytest.mark.parametrize("first", ["import numpyml_core, numpy", "import numpy, numpyml_core"])
@pytest.mark.parametrize("timeout", [None, "28"])
def test_parts_do_not_depend_on_import_order_or_the_openblas_timeout(first, timeout):
    """Whatever was imported first and whatever OPENBLAS_THREAD_TIMEOUT says, the layers split their
    work over the cores (at most the BLAS's threads), and nothing sets the variable for the user."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS",
                                                          "OMP_NUM_THREADS")}
    if timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout
    code = (f"{first}; import os; from numpyml_conv.parts import parallel_threads; "
            "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), parallel_threads())")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    value, threads = result.stdout.split()
    assert value == str(timeout)
    assert int(threads) == parallel_threads()  # as in this process, which has NumPy's default threads


def test_one_blas_thread_in_the_environment_means_one_part():
    """A worker process of the sync/async strategies (started with OPENBLAS_NUM_THREADS=1) does not
    split its layers across threads: the cores belong to the other workers."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    code = "import numpyml_core; from numpyml_conv.parts import parallel_threads; print(parallel_threads())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "1"


@pytest.mark.parametrize("module", ["numpyml_conv.parts", "numpyml_layers._util"])
def test_one_blas_thread_agrees_with_threadpoolctl(module):
    """The helper sets OpenBLAS's count through its C functions: threadpoolctl sees the limit inside and the
    old count after, and a limit threadpoolctl set is kept (nothing changed, nothing restored to another)."""
    import importlib

    from threadpoolctl import ThreadpoolController

    helper = importlib.import_module(module).one_blas_thread
    counts = lambda: [info["num_threads"] for info in ThreadpoolController().info() if info["user_api"] == "blas"]  # noqa: E731
    before = counts()
    with helper():
        assert all(count == 1 for count in counts())
    assert counts() == before
    with threadpool_limits(1, user_api="blas"):
        with helper():
            assert all(count == 1 for count in counts())
        assert all(count == 1 for count in counts())
    assert counts() == before


@pytest.mark.parametrize("module", ["numpyml_conv.parts", "numpyml_layers._util"])
def test_one_blas_thread_falls_back_to_threadpoolctl_methods(module, monkeypatch):
    """A BLAS whose functions threadpoolctl does not expose (MKL, BLIS, another threadpoolctl) is limited
    through the controller's own num_threads / set_num_threads."""
    import importlib

    helper_module = importlib.import_module(module)
    calls = []

    class FakeLibrary:
        user_api, internal_api, threading_layer = "blas", "mkl", "intel"
        num_threads = 4

        def set_num_threads(self, n):
            calls.append(n)
            self.num_threads = n

    class FakeController:
        lib_controllers = [FakeLibrary()]

    monkeypatch.setattr(helper_module, "ThreadpoolController", FakeController)
    helper_module._thread_controls.cache_clear()
    monkeypatch.setattr(helper_module, "advise_huge_pages", lambda: 0)
    try:
        with helper_module.one_blas_thread():
            assert FakeController.lib_controllers[0].num_threads == 1
        assert calls == [1, 4]
    finally:
        helper_module._thread_controls.cache_clear()
