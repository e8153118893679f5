"""The Python API (numpyml_core.Experiment / run / resume / load_model / evaluate): the README's snippet end to
end, overrides, errors naming their source, Ctrl-C as TrainingInterrupted, resume."""

from __future__ import annotations

import json
import tomllib
import warnings

import numpy as np
import pytest

import numpyml_core as nm
from numpyml_core import ConfigError, UserError
from numpyml_core.plugins import PluginManager

from conftest import InterruptAt, Recorder


def test_the_readme_snippet_on_a_synthetic_experiment(blobs_experiment, tmp_path, capsys):
    path = blobs_experiment()
    exp = nm.Experiment.load(path, overrides={"training.epochs": 1, "optimizer.learning_rate": 0.3})
    assert exp.spec.training.epochs == 1 and exp.spec.optimizer.params["learning_rate"] == 0.3
    table = tomllib.loads(path.read_text())
    from_table = nm.Experiment.from_dict(table, source="trial 3")  # the same validation as a file
    assert from_table.source == "trial 3" and from_table.to_dict() == nm.Experiment.load(path).to_dict()

    recorder = Recorder()
    result = nm.run(exp, output=tmp_path / "x", data_dir=None, progress=True, callbacks=[recorder], resume=False)
    assert recorder.epochs == [1]
    assert "blobs" in capsys.readouterr().out  # the progress display's header line
    assert result.run_dir == tmp_path / "x" and result.folder.path == result.run_dir
    assert result.summary["epochs"] == 1 and result.summary["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert result.summary == json.loads((tmp_path / "x" / "summary.json").read_text())
    assert len(result.history) == 1 and result.history[0]["epoch"] == 1
    saved = tomllib.loads((tmp_path / "x" / "config.toml").read_text())
    assert saved["training"]["epochs"] == 1 and saved["optimizer"]["learning_rate"] == 0.3

    model = nm.load_model(tmp_path / "x" / "model.safetensors")
    x = np.random.default_rng(0).uniform(0, 1, size=(7, 6, 6, 1)).astype(np.float32)
    probs = model.predict(x)
    assert probs.shape == (7, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(probs, result.model.predict(x))
    np.testing.assert_array_equal(nm.load_model(tmp_path / "x").predict(x), probs)  # the run folder stands for it
    scores = nm.evaluate(model, dataset="fakeplug_blobs", split="test")
    assert scores == {"dataset": "fakeplug_blobs", "split": "test", "samples": 300,
                      "loss": pytest.approx(result.summary["test_loss"], rel=1e-5),
                      "accuracy": pytest.approx(result.summary["test_accuracy"])}
    assert nm.evaluate(result.model)["accuracy"] == scores["accuracy"]  # its dataset, by default


@pytest.mark.realdata
def test_the_readme_snippet_on_real_mnist(mnist_dir, tmp_path):
    exp = nm.Experiment.load("experiments/mnist.toml", overrides={"training.epochs": 1, "optimizer.learning_rate": 0.3})
    result = nm.run(exp, output=tmp_path / "x", data_dir=mnist_dir, progress=False)
    assert result.summary["epochs"] == 1 and result.summary["test_accuracy"] > 0.9
    model = nm.load_model(result.run_dir / "model.safetensors")
    x = np.random.default_rng(0).uniform(0, 1, size=(16, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), result.model.predict(x))
    scores = nm.evaluate(model, dataset="mnist", split="test", data_dir=mnist_dir)
    assert scores["samples"] == 10000 and scores["accuracy"] == pytest.approx(result.summary["test_accuracy"])


# -- overrides ---------------------------------------------------------------------------------------
def test_overrides_index_lists_from_zero_and_leave_the_table_alone(blobs_experiment):
    path = blobs_experiment()
    exp = nm.Experiment.load(path, overrides={"model.layers.1.units": 48, "model.layers.1.activation": "relu",
                                              "training.strategy.type": "serial", "seed": 5})
    assert exp.spec.layers[1].params["units"] == 48 and exp.spec.layers[1].params["activation"] == "relu"
    assert exp.spec.seed == 5
    table = tomllib.loads(path.read_text())
    before = json.dumps(table, sort_keys=True)
    exp = nm.Experiment.from_dict(table, overrides={"model.layers.2.units": 10, "dataset.validation": 100})
    assert exp.spec.validation == 100
    assert json.dumps(table, sort_keys=True) == before


@pytest.mark.parametrize("overrides,expected", [
    ({"training.epoch": 1}, ["override training.epoch = 1:", "unknown key 'epoch'", "did you mean 'epochs'"]),
    ({"optimiser.learning_rate": 0.1}, ["override optimiser.learning_rate = 0.1:", "did you mean 'optimizer'"]),
    ({"model.layers.1.unit": 8}, ["override model.layers.1.unit = 8:", "[[model.layers]] #2",
                                  "unknown parameter 'unit'", "did you mean 'units'"]),
    ({"training.epochs": "many"}, ["override training.epochs = 'many':", "'epochs'", "expected an integer"]),
    ({"optimizer.learning_rate": True}, ["override optimizer.learning_rate = True:", "expected a number"]),
    ({"model.layers.3.units": 8}, ["override model.layers.3.units = 8:", "model.layers is a list of 3",
                                   "index from 0 to 2"]),
    ({"model.layers.first.units": 8}, ["override model.layers.first.units = 8:", "got 'first'"]),
    ({"training..epochs": 1}, ["override training..epochs = 1:", "expected a dotted key"]),
    ({"seed": 1, "training.epochs": 0}, ["override training.epochs = 0:", "'epochs' must be at least 1"]),
])
def test_override_mistakes_name_the_override(blobs_experiment, overrides, expected):
    path = blobs_experiment()
    with pytest.raises(ConfigError) as raised:
        nm.Experiment.load(path, overrides=overrides)
    message = str(raised.value)
    assert message.startswith(f"{path}: override ")
    for part in expected:
        assert part in message, message


def test_a_mistake_in_the_file_itself_is_reported_as_the_files(blobs_experiment):
    path = blobs_experiment("[training.schedule]\ntype = \"cosin\"\n")
    with pytest.raises(ConfigError) as raised:
        nm.Experiment.load(path, overrides={"training.epochs": 1})
    assert "override" not in str(raised.value) and "cosin" in str(raised.value)


def test_from_dict_errors_name_the_source(blobs_experiment):
    table = tomllib.loads(blobs_experiment().read_text())
    table["optimizer"]["momentun"] = 0.5
    with pytest.raises(ConfigError, match=r"^trial 3: \[optimizer\]: unknown parameter 'momentun' \(did you mean "
                                          r"'momentum'\?\)"):
        nm.Experiment.from_dict(table, source="trial 3")
    with pytest.raises(ConfigError, match="^trial 4: an experiment is a table"):
        nm.Experiment.from_dict(["not", "a", "table"], source="trial 4")
    del table["optimizer"]["momentun"]
    with pytest.raises(ConfigError, match=r"^trial 5: override training.epochs = -1: \[training\]"):
        nm.Experiment.from_dict(table, source="trial 5", overrides={"training.epochs": -1})


def test_validate_builds_the_network_without_data(blobs_experiment):
    model = nm.Experiment.load(blobs_experiment()).validate()
    assert model.output_shape == (10,) and model.count_params() == 36 * 32 + 32 + 32 * 10 + 10
    with pytest.raises(ConfigError, match="metrics_csv"):
        nm.Experiment.load(blobs_experiment('[[callbacks]]\ntype = "metrics_csv"\nfilename = "config.toml"\n')).validate()


# -- Ctrl-C and resume -------------------------------------------------------------------------------
@pytest.mark.parametrize("raise_now", [False, True])
def test_ctrl_c_raises_training_interrupted_with_the_run_folder_then_resume_finishes(blobs_experiment, tmp_path,
                                                                                     raise_now):
    path = blobs_experiment()
    reference = nm.run(path, output=tmp_path / "reference", progress=False)
    with pytest.raises(nm.TrainingInterrupted) as raised:
        nm.run(path, output=tmp_path / "cut", progress=False, callbacks=[InterruptAt(70, raise_now)])
    stopped = raised.value
    assert isinstance(stopped, KeyboardInterrupt)
    assert stopped.run_dir == tmp_path / "cut"
    assert (stopped.epoch, stopped.batch) == (2, 7)  # 63 batches of 16 per epoch: step 70 is epoch 2's 7th
    assert str(stopped).startswith("interrupted in epoch 2 after batch 7; the last checkpoint is in ")
    assert stopped.checkpoint == tmp_path / "cut" / "checkpoints" / "last.safetensors"
    assert stopped.checkpoint.is_file() and f"numpyml resume {tmp_path / 'cut'}" in str(stopped)
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed = nm.run(path, output=tmp_path / "cut", progress=False, resume=True)
    assert resumed.summary["epochs"] == 2
    # stopped at a batch boundary either way: the resumed run is the uninterrupted one
    assert resumed.summary["test_accuracy"] == reference.summary["test_accuracy"]
    x = np.random.default_rng(1).uniform(0, 1, size=(5, 6, 6, 1)).astype(np.float32)
    np.testing.assert_array_equal(resumed.model.predict(x), reference.model.predict(x))


def test_resume_by_folder_and_its_refusals(blobs_experiment, tmp_path):
    path = blobs_experiment()
    with pytest.raises(nm.TrainingInterrupted):
        nm.run(path, output=tmp_path / "run", progress=False, callbacks=[InterruptAt(80)])
    changed = nm.Experiment.load(path, overrides={"optimizer.learning_rate": 0.2})
    with pytest.raises(UserError, match=r"differs from the run .* optimizer\.learning_rate"):
        nm.run(changed, output=tmp_path / "run", progress=False, resume=True)
    assert nm.resume(tmp_path / "run", progress=False).summary["epochs"] == 2
    with pytest.raises(UserError, match="not a run folder"):
        nm.resume(tmp_path / "nothing")
    with pytest.raises(UserError, match="resume needs the run folder"):
        nm.run(path, resume=True)


def test_a_used_output_folder_is_refused(blobs_experiment, tmp_path):
    nm.run(blobs_experiment(), output=tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="not empty"):
        nm.run(blobs_experiment(), output=tmp_path / "run", progress=False)


# -- messages and exports -----------------------------------------------------------------------------
def test_notices_are_warnings_and_log_records_not_prints(blobs_experiment, tmp_path, capsys, caplog, monkeypatch):
    manager = PluginManager(disable=["progress"])
    manager.load_entry_points()
    exp = nm.Experiment.load(blobs_experiment(), manager=manager)
    with pytest.warns(UserWarning, match="default callback 'progress' is not installed"):
        nm.run(exp, output=tmp_path / "a", progress=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.toml").write_text((tmp_path / "a" / "config.toml").read_text())
    with caplog.at_level("INFO", logger="numpyml"):
        nm.run(exp, output=tmp_path / "b", progress=False, resume=True)
    assert any("starting the run from the beginning" in r.getMessage() for r in caplog.records)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_public_names_are_exported_and_documented():
    for name in nm.__all__:
        value = getattr(nm, name)
        if callable(value) and name not in ("hookimpl",):
            assert (value.__doc__ or "").strip(), name
    for name in ("Experiment", "RunResult", "RunFolder", "TrainingInterrupted", "run", "resume", "load_model",
                 "evaluate"):
        assert name in nm.__all__
    assert issubclass(nm.TrainingInterrupted, KeyboardInterrupt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from numpyml_core import Experiment, run  # noqa: F401 - importable by name
