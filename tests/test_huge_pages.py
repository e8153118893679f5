"""advise_huge_pages (conv and layers plugins): OpenBLAS's work buffers asked for 2 MiB pages, contents kept."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import subprocess
import sys

import numpy as np
import pytest

import numpyml_conv.parts as conv_parts
import numpyml_layers._util as layers_util

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self are Linux's")
HELPERS = [conv_parts, layers_util]


def vm_flags(address: int) -> list[str]:
    """The VmFlags of the mapping that holds ``address`` (/proc/self/smaps; advised neighbours may merge)."""
    inside = False
    with open("/proc/self/smaps", encoding="ascii") as smaps:
        for line in smaps:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                low, high = (int(value, 16) for value in first.split("-"))
                inside = low <= address < high
            elif inside and line.startswith("VmFlags:"):
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def mapping_line(address: int) -> str:
    """The line of /proc/self/maps that holds ``address`` (what advise_huge_pages reads), for a failure's message."""
    with open("/proc/self/maps", encoding="ascii") as maps:
        for line in maps:
            low, high = (int(value, 16) for value in line.split()[0].split("-"))
            if low <= address < high:
                return line.strip()
    return f"no mapping holds {address:#x}"


def address_of(buffer: mmap.mmap) -> int:
    view = ctypes.c_char.from_buffer(buffer)
    address = ctypes.addressof(view)
    del view  # (an exported pointer would keep the mapping from closing)
    return address


def guarded_mapping(size: int) -> tuple[mmap.mmap, int]:
    """An anonymous private mapping with ``size`` usable bytes between two inaccessible pages, and the offset
    of those bytes: the guards keep the kernel from merging it with a neighbouring anonymous mapping
    (a NumPy array's, left by an earlier test), as OpenBLAS's buffers are kept apart by their NUMA policy."""
    page = mmap.PAGESIZE  # PROT_NONE below: 0
    mapping = mmap.mmap(-1, size + 2 * page, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    mprotect = ctypes.CDLL(None, use_errno=True).mprotect
    mprotect.argtypes, mprotect.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    start = address_of(mapping)
    for guard in (start, start + page + size):
        assert mprotect(guard, page, 0) == 0, os.strerror(ctypes.get_errno())
    return mapping, page


@pytest.mark.parametrize("helper", HELPERS, ids=["conv", "layers"])
def test_a_buffer_sized_mapping_is_advised_and_keeps_its_contents(helper):
    private, offset = guarded_mapping(helper.BLAS_BUFFER_BYTES)
    data = np.frombuffer(private, dtype=np.float32, count=helper.BLAS_BUFFER_BYTES // 4, offset=offset)
    try:
        start = address_of(private) + offset
        data[: 1 << 20] = np.arange(1 << 20, dtype=np.float32)  # 4 MiB touched: two regions to collapse
        assert "hg" not in vm_flags(start)
        assert helper.advise_huge_pages() >= 1
        assert "hg" in vm_flags(start), mapping_line(start)  # MADV_HUGEPAGE
        np.testing.assert_array_equal(data[: 1 << 20], np.arange(1 << 20, dtype=np.float32))
        assert not data[1 << 20:].any()
    finally:
        del data
        private.close()


@pytest.mark.parametrize("helper", HELPERS, ids=["conv", "layers"])
def test_a_mapping_of_another_size_is_left_alone(helper):
    other = mmap.mmap(-1, helper.BLAS_BUFFER_BYTES + 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        other[0] = 1
        helper.advise_huge_pages()
        assert "hg" not in vm_flags(address_of(other))
    finally:
        other.close()


def run_fresh(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                            check=True)
    return result.stdout.strip()


BUFFERS = """
def buffers():
    found = []
    inside = False
    for line in open('/proc/self/smaps'):
        first = line.split()[0]
        if '-' in first and not first.endswith(':'):
            fields = line.split()
            lo, hi = (int(v, 16) for v in fields[0].split('-'))
            inside = (hi - lo) % (32 << 20) == 0 and fields[1] == 'rw-p' and len(fields) == 5
            if inside:
                found.append([])
        elif inside and line.startswith('VmFlags:'):
            found[-1] = 'hg' in line.split()
    return found
"""

TRAIN_STEP = BUFFERS + """
import numpy as np
import numpyml_core as nm
layers = [nm.create('layer', 'conv2d', filters=8, kernel_size=3, activation='relu'),
          nm.create('layer', 'pool2d', pool_size=2), nm.create('layer', 'flatten'),
          nm.create('layer', 'dense', units=10)]
shape = (12, 12, 3)
rng = np.random.default_rng(0)
for layer in layers:
    shape = layer.build(shape, rng)
layers[0].plan.min_parallel_macs, layers[0].plan.parts = 0, 2  # two thread parts: the pool thread's buffer too
x = rng.standard_normal((64, 12, 12, 3)).astype(np.float32)
for layer in layers:
    x = layer.forward(x, True)
dy = np.ones_like(x)
for layer in reversed(layers):
    dy = layer.backward(dy)
import json; print(json.dumps(buffers()))
"""


def test_the_layers_advise_every_blas_buffer_of_a_training_step():
    """After a training step of conv2d, pool2d and dense in a fresh process, every OpenBLAS work buffer
    (NumPy's OpenBLAS makes one of 32 MiB per thread that has run a product) is asked for huge pages."""
    flags = json.loads(run_fresh(TRAIN_STEP))
    assert flags, "no 32 MiB anonymous mapping: NumPy's BLAS is not the OpenBLAS these helpers know"
    assert all(flags), flags
    off = json.loads(run_fresh(TRAIN_STEP, NUMPYML_BLAS_HUGE_PAGES="0"))
    assert off and not any(off), off


def test_a_dense_network_alone_advises_its_thread_buffer():
    code = BUFFERS + """
import numpy as np
import numpyml_core as nm
layer = nm.create('layer', 'dense', units=100)
layer.build((784,), np.random.default_rng(0))
x = np.ones((32, 784), np.float32)
layer.backward(layer.forward(x, True))
import json; print(json.dumps(buffers()))
"""
    flags = json.loads(run_fresh(code))
    assert flags and all(flags), flags
