"""Training end to end on a small synthetic dataset: run folder, determinism, eval, hooks."""

from __future__ import annotations

import csv
import json
import re
import tomllib

import numpy as np
import pytest
from typer.testing import CliRunner

from numpyml_core import hookimpl
import numpyml_core as nm
from numpyml_core.cli import app
from numpyml_core.serialization import load_tensors, read_metadata

from blobs import EXPERIMENT, SOURCE


@pytest.fixture
def blobs(make_dist, tmp_path):
    make_dist("fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs"}, {"fakeplug_blobs": SOURCE})
    path = tmp_path / "blobs.toml"
    path.write_text(EXPERIMENT)
    return path


def test_run_folder_contents(blobs, tmp_path):
    out = tmp_path / "run"
    result = nm.run(blobs, output=out, progress=False)
    summary, run_dir = result.summary, result.run_dir
    assert run_dir == out
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.toml", "metrics.csv", "model.safetensors",
                                                     "summary.json"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.safetensors", "last.safetensors"]

    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["epoch", "train_loss", "validation_loss", "validation_accuracy", "test_loss",
                       "test_accuracy", "seconds"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    losses = [float(r[1]) for r in rows[1:]]
    assert losses[-1] < losses[0]

    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["test_accuracy"] > 0.9  # separable blobs: a broken network cannot get here
    assert saved["test_accuracy"] == pytest.approx(float(rows[-1][5]))
    assert saved["epochs"] == 3 and saved["steps"] == 3 * 63

    config = tomllib.loads((out / "config.toml").read_text())
    assert config["model"]["layers"][1]["weight_initializer"] == "xavier"
    assert config["provenance"]["distributions"] == {"fakeplug-blobs": "0.0.1", "numpyml": "0.1.0"}
    assert config["training"]["strategy"] == {"type": "serial"}

    meta = read_metadata(out / "model.safetensors")
    arch = json.loads(meta["architecture"])
    assert meta["format"] == "numpyml-model"
    assert arch["input_shape"] == [6, 6, 1] and arch["layers"][1]["units"] == 32
    tensors = load_tensors(out / "model.safetensors")
    assert sorted(tensors) == ["1.bias", "1.weight", "2.bias", "2.weight"]
    assert tensors["1.weight"].dtype == np.float32 and tensors["1.weight"].shape == (36, 32)


def test_resolved_config_reruns_identically(blobs, tmp_path):
    first = nm.run(blobs, output=tmp_path / "a", progress=False).run_dir
    second = nm.run(first / "config.toml", output=tmp_path / "b", progress=False).run_dir
    a, b = load_tensors(first / "model.safetensors"), load_tensors(second / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_same_seed_same_parameters_bitwise(blobs, tmp_path):
    nm.run(blobs, output=tmp_path / "a", progress=False)
    nm.run(blobs, output=tmp_path / "b", progress=False)
    nm.run(nm.Experiment.load(blobs, {"seed": 12}), output=tmp_path / "c", progress=False)
    a = load_tensors(tmp_path / "a" / "model.safetensors")
    b = load_tensors(tmp_path / "b" / "model.safetensors")
    c = load_tensors(tmp_path / "c" / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["1.weight"], c["1.weight"])


def test_eval_command_matches_summary(blobs, tmp_path):
    result = nm.run(blobs, output=tmp_path / "run", progress=False)
    summary, out = result.summary, result.run_dir
    result = CliRunner().invoke(app, ["eval", str(out / "model.safetensors"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dataset"] == "fakeplug_blobs" and data["samples"] == 300
    assert data["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert data["loss"] == pytest.approx(summary["test_loss"], rel=1e-5)


def test_eval_rejects_non_model_files(tmp_path):
    runner = CliRunner()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04\x95 pickle-looking bytes")
    result = runner.invoke(app, ["eval", str(junk), "--dataset", "mnist"])
    assert result.exit_code == 2 and "not a safetensors model file" in result.stderr
    result = runner.invoke(app, ["eval", str(tmp_path / "missing.safetensors")])
    assert result.exit_code == 2 and "no such model file" in result.stderr


def test_cli_run_and_epochs_override(blobs, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["run", str(blobs), "--output", str(out), "--epochs", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert re.search(r"epoch   1/1  train loss [\d.]+  validation loss [\d.]+ acc [\d.]+%  test loss [\d.]+ acc", result.stdout)
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1


class Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def numpyml_on_run_start(self, run):
        self.calls.append("run_start")

    @hookimpl
    def numpyml_on_epoch_end(self, run, epoch, metrics):
        self.calls.append(f"epoch_end {epoch}")
        if epoch == 2:
            run.control.should_stop = True

    @hookimpl
    def numpyml_before_update(self, params, grads):
        assert set(params) == set(grads)
        self.calls.append("update")

    @hookimpl
    def numpyml_on_run_end(self, summary):
        self.calls.append(f"run_end {summary['epochs']}")


def test_hooks_fire_in_order_and_callbacks_can_stop(blobs, tmp_path):
    recorder = Recorder()
    summary = nm.run(blobs, output=tmp_path / "r", callbacks=[recorder], progress=False).summary
    assert summary["epochs"] == 2
    assert recorder.calls[0] == "run_start" and recorder.calls[-1] == "run_end 2"
    assert recorder.calls.count("update") == 2 * 63
    assert [c for c in recorder.calls if c.startswith("epoch_end")] == ["epoch_end 1", "epoch_end 2"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_reported(blobs, tmp_path):
    text = (blobs.read_text().replace("learning_rate = 0.1", "learning_rate = 1.0e3")
            .replace('activation = "softmax"', 'activation = "identity"').replace('"cross_entropy"', '"quadratic"'))
    blobs.write_text(text)
    result = CliRunner().invoke(app, ["run", str(blobs), "--output", str(tmp_path / "d"), "--quiet"])
    assert result.exit_code == 2
    assert "diverged" in result.stderr and "epoch 1" in result.stderr and "learning rate" in result.stderr


def test_flip_averaged_evaluation():
    from numpyml_core.data import ArraySplit
    from numpyml_core.model import Model
    from numpyml_core.trainer import evaluate
    from numpyml_core import create

    rng = np.random.default_rng(0)
    model = Model([create("layer", "flatten"), create("layer", "dense", units=3, activation="softmax")])
    model.build((4, 5, 2), rng)
    x = rng.integers(0, 255, size=(20, 4, 5, 2), dtype=np.uint8)
    y = rng.integers(0, 3, size=20)
    split = ArraySplit(x, y)
    cost = create("cost", "cross_entropy")
    plain = evaluate(model, cost, split, batch_size=7)
    mirrored = evaluate(model, cost, ArraySplit(x[:, :, ::-1].copy(), y), batch_size=7)
    both = evaluate(model, cost, split, batch_size=7, flip=True)
    xs, _ = split.batch(np.arange(20))
    probs = (model.predict(xs) + model.predict(xs[:, :, ::-1])) / 2
    expected_accuracy = float(np.mean(probs.argmax(1) == y))
    assert both["accuracy"] == pytest.approx(expected_accuracy)
    assert both["loss"] == pytest.approx(float(-np.mean(np.log(probs[np.arange(20), y]))), rel=1e-5)
    assert both["loss"] != pytest.approx(plain["loss"]) and both["loss"] != pytest.approx(mirrored["loss"])
