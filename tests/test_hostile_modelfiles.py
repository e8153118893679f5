"""Hostile model files, checkpoints and images (issue 15, items 9, 10, 14, 15, 24, 26).

Every case ends in one clear paragraph naming the file and the key, exit status 2, no traceback,
memory bounded by what the file holds, and the run folder left as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core.cli import app

from conftest import address_space_cap, require_extra

_CACHE: dict[str, Path] = {}


@pytest.fixture
def run_dir(blobs_experiment, tmp_path, tmp_path_factory):
    """A finished 2-epoch blobs run (trained once per session), copied to ``tmp_path / "run"``."""
    if "run" not in _CACHE:
        base = tmp_path_factory.mktemp("trained") / "run"
        nm.run(blobs_experiment(), output=base, progress=False)
        _CACHE["run"] = base
    else:
        blobs_experiment()  # install the fake dataset plugin for this test
    target = tmp_path / "run"
    shutil.copytree(_CACHE["run"], target)
    return target


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    with safe_open(str(path), "np") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata())


def rewrite(path: Path, key: str | None = None, value: str | None = None,
            tensors: dict[str, np.ndarray] | None = None) -> None:
    """Rewrite a safetensors file with metadata ``key`` set to ``value`` and/or other ``tensors``."""
    old, meta = read(path)
    if key is not None:
        meta[key] = value
    save_file(tensors if tensors is not None else old, str(path), metadata=meta)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, repr(result.exception))
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    message = result.stderr
    assert message.startswith("error: ") and message.count("\n") == 1, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --------------------------------------------------------------------------------------------
# item 14: malformed architecture metadata
# --------------------------------------------------------------------------------------------
def _arch(mutate):
    def apply(arch: dict) -> str:
        mutate(arch)
        return json.dumps(arch)
    return apply


DEEP = "[" * 100_000 + "]" * 100_000

ARCHITECTURES = {
    "layers-string": (_arch(lambda a: a.__setitem__("layers", "dense")), "architecture.layers"),
    "layers-dict": (_arch(lambda a: a.__setitem__("layers", {"type": "dense"})), "architecture.layers"),
    "layer-string": (_arch(lambda a: a["layers"].__setitem__(1, "dense")), "architecture.layers[1]"),
    "type-list": (_arch(lambda a: a["layers"][1].__setitem__("type", ["dense"])), "architecture.layers[1].type"),
    "type-missing": (_arch(lambda a: a["layers"][2].pop("type")), "architecture.layers[2].type"),
    "input-shape-int": (_arch(lambda a: a.__setitem__("input_shape", 36)), "architecture.input_shape"),
    "input-shape-negative": (_arch(lambda a: a.__setitem__("input_shape", [6, -6, 1])), "architecture.input_shape"),
    "layers-empty": (_arch(lambda a: a.__setitem__("layers", [])), "architecture.layers"),
    "cost-string": (_arch(lambda a: a.__setitem__("cost", "cross_entropy")), "architecture.cost"),
    "dataset-number": (_arch(lambda a: a.__setitem__("dataset", 5)), "architecture.dataset"),
    "class-names-number": (_arch(lambda a: a.__setitem__("class_names", 10)), "architecture.class_names"),
    "not-an-object": (lambda arch: "[1, 2]", "architecture"),
    "deep-json": (lambda arch: DEEP, "architecture"),
    "deep-params": (_arch(lambda a: a["layers"][1].__setitem__("activation", json.loads("[" * 500 + "]" * 500))),
                    "architecture.layers[1].activation"),
}


@pytest.mark.parametrize("command", ["eval", "predict"])
@pytest.mark.parametrize("case", list(ARCHITECTURES))
def test_malformed_architecture_is_one_clear_error(run_dir, tmp_path, case, command):
    model = run_dir / "model.safetensors"
    make, key = ARCHITECTURES[case]
    _, meta = read(model)
    rewrite(model, "architecture", make(json.loads(meta["architecture"])))
    before = digests(run_dir)
    args = ["eval", str(model)] if command == "eval" else ["predict", str(model), str(tmp_path / "x.png")]
    result = CliRunner().invoke(app, args)
    assert_clean_error(result, str(model), key)
    assert digests(run_dir) == before


# --------------------------------------------------------------------------------------------
# item 9: a model file whose architecture claims a huge network
# --------------------------------------------------------------------------------------------
def test_a_huge_architecture_is_compared_with_the_stored_tensors_before_allocating(run_dir):
    """``units = 2000000`` with the file's 36x32 weights: the old code drew 36x2000000 float64 (576 MB), kept
    a float32 copy and its gradient (1.2 GB in all) before comparing shapes; now nothing that large is
    allocated, so the check passes under a 256 MiB address-space headroom."""
    model = run_dir / "model.safetensors"
    _, meta = read(model)
    arch = json.loads(meta["architecture"])
    arch["layers"][1]["units"] = 2_000_000
    rewrite(model, "architecture", json.dumps(arch))
    with address_space_cap(256 << 20):
        result = CliRunner().invoke(app, ["eval", str(model)])
    assert_clean_error(result, str(model), "layer #2 (dense)", "(36, 2000000)", "1.weight", "(36, 32)")


def test_a_wrong_layer_size_names_the_tensor_and_both_shapes(run_dir):
    model = run_dir / "model.safetensors"
    _, meta = read(model)
    arch = json.loads(meta["architecture"])
    arch["layers"][1]["units"] = 30
    rewrite(model, "architecture", json.dumps(arch))
    result = CliRunner().invoke(app, ["eval", str(model)])
    assert_clean_error(result, str(model), "'1.weight'", "(36, 32)", "(36, 30)")


def test_available_memory_is_the_smaller_of_meminfo_and_the_cgroup_limit(tmp_path, monkeypatch):
    import numpyml_initializers.initializers as initializers

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 16000000 kB\nMemFree: 1000 kB\nMemAvailable: 8000000 kB\n")
    v2_max, v2_current = tmp_path / "memory.max", tmp_path / "memory.current"
    v1_limit, v1_usage = tmp_path / "limit_in_bytes", tmp_path / "usage_in_bytes"
    monkeypatch.setattr(initializers, "MEMINFO", meminfo)
    monkeypatch.setattr(initializers, "CGROUP_V2_MAX", v2_max)
    monkeypatch.setattr(initializers, "CGROUP_V2_CURRENT", v2_current)
    monkeypatch.setattr(initializers, "CGROUP_V1_LIMIT", v1_limit)
    monkeypatch.setattr(initializers, "CGROUP_V1_USAGE", v1_usage)
    host = 8_000_000 * 1024
    assert initializers.available_memory() == host  # no cgroup files: the host's figure
    v2_max.write_text("max\n")
    v2_current.write_text("123456789\n")
    assert initializers.available_memory() == host  # "max": no limit
    v2_max.write_text(f"{2 << 30}\n")
    v2_current.write_text(f"{512 << 20}\n")
    assert initializers.available_memory() == (2 << 30) - (512 << 20)  # the container's limit is smaller
    v2_current.write_text(f"{3 << 30}\n")
    assert initializers.available_memory() == 0  # over the limit already
    v2_max.unlink()
    v2_current.unlink()
    v1_limit.write_text("9223372036854771712\n")  # cgroup v1's "unlimited"
    v1_usage.write_text("1000\n")
    assert initializers.available_memory() == host
    v1_limit.write_text(f"{1 << 30}\n")
    v1_usage.write_text(f"{256 << 20}\n")
    assert initializers.available_memory() == (1 << 30) - (256 << 20)
    v1_limit.write_text("garbage\n")
    assert initializers.available_memory() == host  # unreadable: ignored
    monkeypatch.setattr(initializers, "MEMINFO", tmp_path / "absent")
    v1_limit.write_text(f"{1 << 30}\n")
    assert initializers.available_memory() == (1 << 30) - (256 << 20)


def test_require_memory_uses_the_cgroup_limit(tmp_path, monkeypatch):
    import numpyml_initializers.initializers as initializers

    v2_max, v2_current = tmp_path / "memory.max", tmp_path / "memory.current"
    v2_max.write_text(f"{100 << 20}\n")
    v2_current.write_text(f"{90 << 20}\n")
    monkeypatch.setattr(initializers, "CGROUP_V2_MAX", v2_max)
    monkeypatch.setattr(initializers, "CGROUP_V2_CURRENT", v2_current)
    with pytest.raises(MemoryError, match="1000x1000 parameter needs 12 MB, 10 MB are available"):
        initializers.require_memory((1000, 1000), np.float32)


# --------------------------------------------------------------------------------------------
# items 24 and 26: non-finite and non-float tensors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_non_finite_weights_are_refused_at_load(run_dir, tmp_path, bad, command):
    model = run_dir / "model.safetensors"
    tensors, _ = read(model)
    tensors["2.weight"][3, 4] = bad
    rewrite(model, tensors=tensors)
    args = ["eval", str(model)] if command == "eval" else ["predict", str(model), str(tmp_path / "x.png")]
    result = CliRunner().invoke(app, args)
    assert_clean_error(result, str(model), "'2.weight'", "non-finite")


def test_a_checkpoint_with_non_finite_weights_is_refused_not_blamed_on_the_learning_rate(run_dir):
    last = run_dir / "checkpoints" / "last.safetensors"
    tensors, _ = read(last)
    tensors["model/1.bias"][0] = np.nan
    rewrite(last, tensors=tensors)
    before = digests(run_dir)
    result = CliRunner().invoke(app, ["resume", str(run_dir), "--quiet"])
    assert_clean_error(result, str(last), "'model/1.bias'", "non-finite")
    assert "learning rate" not in result.stderr
    assert digests(run_dir) == before


@pytest.mark.parametrize("dtype", [np.int32, np.float64, np.float16, np.uint8])
def test_a_tensor_of_another_dtype_is_refused(run_dir, dtype):
    model = run_dir / "model.safetensors"
    tensors, _ = read(model)
    tensors["1.weight"] = tensors["1.weight"].astype(dtype)
    rewrite(model, tensors=tensors)
    result = CliRunner().invoke(app, ["eval", str(model)])
    assert_clean_error(result, str(model), "'1.weight'", np.dtype(dtype).name, "float32")


def test_a_checkpoint_tensor_of_another_dtype_is_refused(run_dir):
    last = run_dir / "checkpoints" / "last.safetensors"
    tensors, _ = read(last)
    tensors["model/2.weight"] = (tensors["model/2.weight"] * 1000).astype(np.int32)
    rewrite(last, tensors=tensors)
    result = CliRunner().invoke(app, ["resume", str(run_dir), "--quiet"])
    assert_clean_error(result, "'2.weight'", "int32", "float32")


# --------------------------------------------------------------------------------------------
# item 15: malformed checkpoint state
# --------------------------------------------------------------------------------------------
def _state(mutate):
    def apply(state: dict) -> str:
        mutate(state)
        return json.dumps(state)
    return apply


def _set(path, value):
    def mutate(state):
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


STATES = {
    "no-config": (_state(lambda s: s.pop("config")), "state.config"),
    "a-list": (lambda s: "[1, 2]", "state"),
    "an-integer": (lambda s: "7", "state"),
    "epoch-text": (_state(_set(["epoch"], "abc")), "state.epoch"),
    "epoch-negative": (_state(_set(["epoch"], -5)), "state.epoch"),
    "epoch-huge": (_state(_set(["epoch"], 10**12)), "state.epoch"),
    "epoch-bool": (_state(_set(["epoch"], True)), "state.epoch"),
    "batch-negative": (_state(_set(["batch"], -1)), "state.batch"),
    "batch-after-the-last-epoch": (_state(_set(["batch"], 3)), "state.batch"),
    "batch-beyond-the-epoch": (_state(lambda s: s.update(epoch=1, batch=10**6)), "state.batch"),
    "step-float": (_state(_set(["step"], 1.5)), "state.step"),
    "rng-wrong-type": (_state(_set(["rng", "shuffle"], "abc")), "state.rng.shuffle"),
    "rng-wrong-state": (_state(_set(["rng", "init", "state"], {"state": "x"})), "state.rng.init"),
    "rng-missing": (_state(lambda s: s["rng"].pop("augment")), "state.rng.augment"),
    "history-string": (_state(_set(["history"], "abc")), "state.history"),
    "loss-not-a-number": (_state(_set(["epoch_losses"], ["abc"])), "state.epoch_losses[0]"),
    "control-list": (_state(_set(["control"], [])), "state.control"),
    "callbacks-list": (_state(_set(["callbacks"], [1])), "state.callbacks"),
    "deep-json": (lambda s: DEEP, "state"),
}


@pytest.mark.parametrize("case", list(STATES))
def test_malformed_checkpoint_state_is_one_clear_error(run_dir, case):
    last = run_dir / "checkpoints" / "last.safetensors"
    make, key = STATES[case]
    _, meta = read(last)
    rewrite(last, "state", make(json.loads(meta["state"])))
    before = digests(run_dir)
    result = CliRunner().invoke(app, ["resume", str(run_dir), "--quiet"])
    assert_clean_error(result, str(last), key)
    assert digests(run_dir) == before


def test_the_unmodified_checkpoint_still_resumes(run_dir):
    result = CliRunner().invoke(app, ["resume", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------
# item 10: huge images in predict
# --------------------------------------------------------------------------------------------
def blank_png(path: Path, width: int, height: int) -> Path:
    """A black grayscale PNG of any size, streamed through zlib (a 12000x12000 one is about 140 KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then black pixels
    parts = [compressor.compress(row) for _ in range(height)]
    data = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [12_000, 20_000])
def test_predict_refuses_an_image_larger_than_the_pixel_limit(run_dir, tmp_path, side):
    require_extra("PIL", "image")
    from numpyml_report.inference import MAX_IMAGE_PIXELS

    image = blank_png(tmp_path / "huge.png", side, side)
    with address_space_cap(1 << 30):
        result = CliRunner().invoke(app, ["predict", str(run_dir), str(image)])
    assert_clean_error(result, str(image), f"{side * side:,} pixels", f"{MAX_IMAGE_PIXELS:,}")
    help_text = " ".join(CliRunner().invoke(app, ["predict", "--help"]).stdout.split())
    assert f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels" in help_text


def test_predict_accepts_an_image_just_under_the_limit(run_dir, tmp_path, monkeypatch):
    require_extra("PIL", "image")
    from numpyml_report import inference

    monkeypatch.setattr(inference, "MAX_IMAGE_PIXELS", 400 * 300)
    ok = blank_png(tmp_path / "ok.png", 400, 300)
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(ok)])
    assert result.exit_code == 0, result.output
    big = blank_png(tmp_path / "big.png", 401, 300)
    assert_clean_error(CliRunner().invoke(app, ["predict", str(run_dir), str(big)]), str(big), "401x300",
                       "120,300 pixels")
