"""`numpyml export --format onnx` (issue 19 item 2): an exported MLP and CNN give ONNX Runtime's
probabilities within 1e-4 of numpyml's on 200 inputs; every built-in layer and activation converts
(both paddings, strides, tied and untied biases, max and average pooling, NHWC flatten order); unknown
layers are a clear error naming them; a layer's own ``to_onnx`` is used. onnx and onnxruntime are
optional: without them these tests skip with an install hint (and fail in CI, NUMPYML_REQUIRE_REAL_DATA=1)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from conftest import require_extra, require_real_data
from numpyml_core import UserError
from numpyml_core.cli import app
from numpyml_datasets import _files


@pytest.fixture
def ort():
    """onnxruntime, after checking onnx is there: skip without them (fail with NUMPYML_REQUIRE_REAL_DATA=1)."""
    require_extra("onnx", "onnx")
    try:
        return importlib.import_module("onnxruntime")
    except ImportError:
        require_real_data("onnxruntime is not installed (a test-only dependency: pip install onnxruntime, or "
                          "uv sync --extra onnx --group onnx-test)")


@pytest.fixture(autouse=True)
def fresh_cache():
    _files.clear_cache()
    yield
    _files.clear_cache()


def table(layers: list[dict], dataset: dict, epochs: int = 1) -> dict:
    return {"name": "export", "seed": 3, "dataset": dataset, "model": {"layers": layers},
            "cost": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "learning_rate": 0.05},
            "training": {"epochs": epochs, "batch_size": 25}}


def image_data(tmp_path: Path, shape=(12, 12, 3), classes: int = 4, n: int = 200) -> dict:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, n)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:50], y_test=y[:50])
    return {"type": "npz", "path": str(path), "num_classes": classes}


def onnx_probabilities(ort, proto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(["probabilities"], {"input": x})
    return out


def compare(ort, model, inputs: np.ndarray) -> float:
    from numpyml_onnx.exporter import export_onnx

    proto = export_onnx(model, "test")
    expected = model.predict(inputs)
    got = onnx_probabilities(ort, proto, inputs)
    assert got.shape == expected.shape and got.dtype == np.float32
    return float(np.max(np.abs(got - expected)))


def inputs_for(model, n: int = 200, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *model.input_shape), dtype=np.float32)


CNN = [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "batch_norm"},
    {"type": "pool2d", "mode": "max"},
    {"type": "dropout", "rate": 0.3},
    {"type": "flatten"},
    {"type": "dense", "units": 4, "activation": "softmax"},
]
MLP = [
    {"type": "flatten"},
    {"type": "dense", "units": 32, "activation": "relu"},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 16, "activation": "tanh"},
    {"type": "dense", "units": 4, "activation": "softmax"},
]


@pytest.mark.parametrize("layers", [MLP, CNN], ids=["mlp", "cnn"])
def test_trained_network_exported_through_the_cli_matches_onnx_runtime(ort, tmp_path, layers):
    onnx = require_extra("onnx", "onnx")
    result = nm.run(nm.Experiment.from_dict(table(layers, image_data(tmp_path), epochs=2)), output=tmp_path / "run",
                    progress=False)
    out = tmp_path / "model.onnx"
    cli = CliRunner().invoke(app, ["export", str(tmp_path / "run" / "model.safetensors"), "--format", "onnx",
                                   "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    assert "opset 17" in cli.stdout and "IR version 8" in cli.stdout
    proto = onnx.load(str(out))
    assert proto.ir_version == 8 and [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    model = nm.load_model(tmp_path / "run")
    if layers is CNN:  # the batch norm's running statistics were trained away from (0, 1)
        assert not np.allclose(result.model.layers[1].state["moving_mean"], 0)
    x = inputs_for(model)
    expected = model.predict(x)
    got = onnx_probabilities(ort, proto, x)
    assert np.max(np.abs(got - expected)) <= 1e-4
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def randomized(model) -> None:
    """Non-trivial batch-norm statistics and biases, so a wrong axis or layout shows."""
    rng = np.random.default_rng(5)
    for layer in model.layers:
        for array in list(getattr(layer, "params", {}).values()):
            if array.ndim <= 3 and not array.ndim == 0:
                array[...] = rng.normal(scale=0.3, size=array.shape)
        state = getattr(layer, "state", None) or {}
        if "moving_mean" in state:
            state["moving_mean"][...] = rng.normal(size=state["moving_mean"].shape)
            state["moving_variance"][...] = rng.uniform(0.5, 2.0, size=state["moving_variance"].shape)


ARCHITECTURES = {
    "conv strides, asymmetric same padding, untied bias, avg pool same": (
        (11, 9, 2),
        [{"type": "conv2d", "filters": 5, "kernel_size": [3, 2], "strides": 2, "padding": "same", "bias": "untied",
          "activation": "sigmoid"},
         {"type": "avg_pool2d", "pool_size": 2, "padding": "same"},
         {"type": "batch_norm"},
         {"type": "conv2d", "filters": 3, "kernel_size": 2, "padding": [1, 0, 2, 1], "bias": "none",
          "activation": {"type": "leaky_relu", "alpha": 0.2}},
         {"type": "flatten"},
         {"type": "dense", "units": 4, "activation": "softmax"}]),
    "max pool overlapping and same, global average pooling, standalone activations": (
        (10, 10, 3),
        [{"type": "conv2d", "filters": 6, "kernel_size": 3, "activation": "tanh"},
         {"type": "max_pool2d", "pool_size": 3, "strides": 2, "padding": "same"},
         {"type": "leaky_relu"},
         {"type": "global_avg_pool"},
         {"type": "batch_norm"},
         {"type": "dense", "units": 4, "use_bias": False},
         {"type": "identity"},
         {"type": "softmax"}]),
    "reshape between dense and conv": (
        (6, 6, 1),
        [{"type": "flatten"},
         {"type": "dense", "units": 48, "activation": "relu"},
         {"type": "reshape", "target_shape": [4, -1, 3]},
         {"type": "conv2d", "filters": 2, "kernel_size": 2, "activation": "identity"},
         {"type": "reshape", "target_shape": [-1]},
         {"type": "sigmoid"},
         {"type": "dense", "units": 4},
         {"type": "softmax"}]),
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_built_in_layer_converts(ort, tmp_path, name):
    shape, layers = ARCHITECTURES[name]
    model = nm.Experiment.from_dict(table(layers, image_data(tmp_path, shape))).validate()
    randomized(model)
    assert compare(ort, model, inputs_for(model)) <= 1e-4


FAKE_LAYERS = '''
import numpy as np
from numpyml_core import hookimpl


class Square:
    """y = x * x, with an ONNX conversion of its own."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def build(self, input_shape, rng):
        return tuple(input_shape)

    def forward(self, x, training):
        self._x = x
        return x * x

    def backward(self, dy):
        return 2 * self._x * dy

    def to_onnx(self, graph, x):
        return graph.node("Mul", [x, x], hint="square")


class Opaque(Square):
    """The same, without a conversion."""

    to_onnx = None


@hookimpl
def numpyml_register_components(register):
    register("layer", "square", Square)
    register("layer", "opaque", Opaque)
'''


def test_plugin_layers_convert_themselves_or_are_named(ort, make_dist, tmp_path):
    from numpyml_core import PluginManager
    from numpyml_core.plugin_api import set_plugin_manager

    make_dist("fakeplug-square", "0.0.1", {"square": "fakeplug_square"}, {"fakeplug_square": FAKE_LAYERS})
    previous = set_plugin_manager(None)
    try:
        layers = [{"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "square"}, {"type": "flatten"},
                  {"type": "dense", "units": 4, "activation": "softmax"}]
        model = nm.Experiment.from_dict(table(layers, image_data(tmp_path, (6, 6, 1)))).validate()
        randomized(model)
        assert compare(ort, model, inputs_for(model)) <= 1e-4
        from numpyml_onnx.exporter import export_onnx

        layers[1]["type"] = "opaque"
        model = nm.Experiment.from_dict(table(layers, image_data(tmp_path, (6, 6, 1)))).validate()
        with pytest.raises(UserError) as info:
            export_onnx(model, "m.safetensors")
        text = str(info.value)
        assert "layer #2 (opaque) of m.safetensors" in text and "fakeplug_square.Opaque" in text and "to_onnx" in text
    finally:
        set_plugin_manager(previous)


def test_export_errors_exit_2(tmp_path, monkeypatch):
    result = CliRunner().invoke(app, ["export", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["export", "m.safetensors", "--format", "tflite", "--out", "x"])
    assert result.exit_code == 2 and "tflite" in result.stderr and "onnx" in result.stderr
    monkeypatch.setitem(sys.modules, "onnx", None)  # not installed
    result = CliRunner().invoke(app, ["export", "m.safetensors", "--out", "x"])
    assert result.exit_code == 2 and "pip install 'numpyml[onnx]'" in result.stderr
