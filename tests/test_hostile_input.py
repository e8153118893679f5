"""Hostile input: mutated experiment files, unwritable or full disks. Never a traceback."""

from __future__ import annotations

import errno
import os
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from numpyml_core import io as numpyml_io
from numpyml_core.cli import app
from numpyml_core.config import dumps_toml

from blobs import EXPERIMENT, SOURCE

BASE = tomllib.loads(EXPERIMENT)

values = st.one_of(
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=4, max_value=300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["dense", "softmax", "relu", "sgd", "serial", "flatten", "he", "fakeplug_blobs",
                     "cross_entropy", "quadratic", "reshape", "identity"]),
    st.lists(st.integers(min_value=-2, max_value=40), max_size=4),
    st.dictionaries(st.sampled_from(["type", "units", "alpha", "x"]), st.sampled_from(["relu", 3, -1.0, "zz"]),
                    max_size=2),
)


def paths(node, prefix=()):
    """Every (path) to a value in a TOML tree, lists included."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield prefix + (key,)
        if isinstance(value, (dict, list)):
            yield from paths(value, prefix + (key,))


ALL_PATHS = list(paths(BASE))


def mutate(document, path, action, value, new_key):
    import copy

    doc = copy.deepcopy(document)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "rename" and isinstance(parent, dict):
        parent[new_key] = parent.pop(last)
    elif action == "add" and isinstance(parent, dict):
        parent[new_key] = value
    return doc


@pytest.fixture
def site(make_dist):
    make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs"}, {"fakeplug_blobs": SOURCE})


def check_result(result, what):
    assert result.exit_code in (0, 2), f"{what}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 2:
        assert "error: " in result.stderr and len(result.stderr.strip()) > 20


@settings(max_examples=int(os.environ.get("NUMPYML_HYPOTHESIS_EXAMPLES", "120")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(ALL_PATHS),
    action=st.sampled_from(["delete", "replace", "rename", "add"]),
    value=values,
    new_key=st.sampled_from(["unit", "type", "epochs", "activation", "learning_rate", "zzz", "validation"]),
)
def test_mutated_experiments_fail_cleanly_or_run(site, memory_cap, tmp_path_factory, path, action, value, new_key):
    folder = tmp_path_factory.mktemp("mutant")
    document = mutate(BASE, path, action, value, new_key)
    try:
        text = dumps_toml(document)
    except (TypeError, ValueError):
        return  # not representable in TOML (for example a None)
    experiment = folder / "mutant.toml"
    experiment.write_text(text)
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(experiment)])
    check_result(result, f"validate {path} {action} {value!r}")
    if result.exit_code == 0:
        result = runner.invoke(app, ["run", str(experiment), "--epochs", "1", "--quiet", "--output",
                                     str(folder / "run")])
        check_result(result, f"run {path} {action} {value!r}")


def test_a_network_too_big_for_memory_is_a_clear_error(site, memory_cap, tmp_path):
    experiment = tmp_path / "huge.toml"
    experiment.write_text(EXPERIMENT.replace("units = 32", "units = 67108864"))
    for command in (["validate", str(experiment)],
                    ["run", str(experiment), "--quiet", "--output", str(tmp_path / "run")]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "layer #2 (dense) needs more memory for its parameters than this machine has" in result.stderr
        assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("garbage", [b"\xff\xfe not utf8", b"name = \n", b"[[model.layers]]\ntype = 3\n",
                                     b"model = 1\n", b"[dataset]\ntype = 'fakeplug_blobs'\nvalidation = 1e3\n"])
def test_garbage_files(site, tmp_path, garbage):
    experiment = tmp_path / "garbage.toml"
    experiment.write_bytes(garbage)
    result = CliRunner().invoke(app, ["validate", str(experiment)])
    assert result.exit_code == 2
    assert str(experiment) in result.stderr


def test_invalid_toml_names_line_and_column(tmp_path):
    experiment = tmp_path / "bad.toml"
    experiment.write_text('name = "x"\nseed = 1\n[training\nepochs = 2\n')
    result = CliRunner().invoke(app, ["validate", str(experiment)])
    assert result.exit_code == 2
    assert "invalid TOML" in result.stderr and "line 3" in result.stderr and "column" in result.stderr


def test_output_under_a_file_is_refused_before_training(site, tmp_path):
    experiment = tmp_path / "blobs.toml"
    experiment.write_text(EXPERIMENT)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(app, ["run", str(experiment), "--output", str(blocker / "run"), "--quiet"])
    assert result.exit_code == 2
    assert "--output" in result.stderr and "Traceback" not in result.output


def test_disk_full_during_a_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"the previous, complete file")
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(numpyml_io.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError):
        numpyml_io.atomic_write_bytes(target, b"new content" * 1000)
    assert target.read_bytes() == b"the previous, complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_disk_full_at_the_end_of_a_run_is_a_clear_error(site, tmp_path, monkeypatch):
    experiment = tmp_path / "blobs.toml"
    experiment.write_text(EXPERIMENT)

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    import numpyml_core.serialization as serialization

    monkeypatch.setattr(serialization, "atomic_write_bytes", full)
    result = CliRunner().invoke(app, ["run", str(experiment), "--output", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "run" / "model.safetensors").exists()

