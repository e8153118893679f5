"""The tensorboard and mlflow logger callbacks, tested by reading their output back."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core.cli import app

from conftest import require_extra


def read_events(folder: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in the TensorBoard event files of ``folder``.

    Event files are TFRecord streams: a little-endian uint64 length, its masked CRC32, the record
    (an ``Event`` protocol buffer), the record's masked CRC32.
    """
    from tensorboardX.proto.event_pb2 import Event

    scalars = []
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            record = data[offset + 12: offset + 12 + length]
            offset += 12 + length + 4
            event = Event()
            event.ParseFromString(record)
            for value in event.summary.value:
                scalars.append((value.tag, event.step, value.simple_value))
    return scalars


def test_tensorboard_writes_epoch_and_batch_scalars(blobs_experiment, tmp_path):
    require_extra("tensorboardX", "tensorboard")
    experiment = blobs_experiment('\n[[callbacks]]\ntype = "tensorboard"\nevery_n_batches = 20\n')
    result = nm.run(experiment, output=tmp_path / "run", progress=False)
    summary, run_dir = result.summary, result.run_dir
    scalars = read_events(run_dir / "tensorboard")
    by_tag: dict[str, dict[int, float]] = {}
    for tag, step, value in scalars:
        by_tag.setdefault(tag, {})[step] = value
    assert {"loss/train", "loss/validation", "accuracy/validation", "loss/test", "accuracy/test",
            "time/epoch_seconds", "batch/train_loss"} <= set(by_tag)
    assert sorted(by_tag["accuracy/test"]) == [1, 2]
    assert by_tag["accuracy/test"][2] == pytest.approx(summary["test_accuracy"], rel=1e-6)
    assert by_tag["loss/train"][2] == pytest.approx(summary["train_loss"], rel=1e-6)
    assert sorted(by_tag["batch/train_loss"]) == list(range(20, 2 * 63 + 1, 20))  # 63 batches per epoch


def test_mlflow_logs_params_metrics_and_model(blobs_experiment, tmp_path, monkeypatch):
    require_extra("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # (the callback sets it; keep it out of other tests)
    experiment = blobs_experiment('\n[[callbacks]]\ntype = "mlflow"\nevery_n_batches = 50\n')
    result = nm.run(experiment, output=tmp_path / "runs" / "first", progress=False)
    summary, run_dir = result.summary, result.run_dir

    store = tmp_path / "runs" / "mlruns"
    assert store.is_dir()
    client = MlflowClient(tracking_uri=store.as_uri())
    found = client.get_experiment_by_name("blobs")
    assert found is not None
    (logged,) = client.search_runs([found.experiment_id])
    assert logged.info.run_name == "first" and logged.info.status == "FINISHED"
    params = logged.data.params
    assert params["optimizer.learning_rate"] == "0.1" and params["model.layers.1.units"] == "32"
    assert params["dataset.type"] == "fakeplug_blobs" and params["training.epochs"] == "2"
    history = client.get_metric_history(logged.info.run_id, "test_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert history[-1].value == pytest.approx(summary["test_accuracy"])
    assert [m.step for m in client.get_metric_history(logged.info.run_id, "batch_train_loss")] == [50, 100]
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"model.safetensors", "summary.json", "config.toml"} <= artifacts

    # the logged model is the run's model: same bytes of weights, and it loads
    folder = Path(client.download_artifacts(logged.info.run_id, "model.safetensors", str(tmp_path / "dl")))
    from numpyml_core.serialization import load_model, load_tensors

    model, arch = load_model(folder)
    assert arch["dataset"] == "fakeplug_blobs" and arch["class_names"][0] == "blob0"
    saved = load_tensors(run_dir / "model.safetensors")
    logged_tensors = load_tensors(folder)
    assert all((saved[k] == logged_tensors[k]).all() for k in saved)
    logged_summary = json.loads(Path(client.download_artifacts(logged.info.run_id, "summary.json",
                                                               str(tmp_path / "dl2"))).read_text())
    assert logged_summary["test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_missing_extra_is_a_clear_error_before_training(blobs_experiment, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    experiment = blobs_experiment('\n[[callbacks]]\ntype = "tensorboard"\n')
    result = CliRunner().invoke(app, ["run", str(experiment), "--output", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 2
    assert "pip install 'numpyml[tensorboard]'" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "r" / "metrics.csv").exists()

    monkeypatch.setitem(sys.modules, "mlflow", None)
    experiment = blobs_experiment('\n[[callbacks]]\ntype = "mlflow"\n')
    result = CliRunner().invoke(app, ["run", str(experiment), "--output", str(tmp_path / "m"), "--quiet"])
    assert result.exit_code == 2 and "pip install 'numpyml[mlflow]'" in result.stderr


def test_bad_parameters_are_config_errors(blobs_experiment, tmp_path):
    require_extra("tensorboardX", "tensorboard")
    experiment = blobs_experiment('\n[[callbacks]]\ntype = "tensorboard"\nevery_n_batches = -1\n')
    result = CliRunner().invoke(app, ["run", str(experiment), "--output", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 2 and "every_n_batches must be 0" in result.stderr


def test_loggers_and_plotting_libraries_are_not_imported_unless_used():
    code = (
        "import sys\n"
        "from numpyml_core.cli import app\n"
        "from numpyml_core.plugins import get_plugin_manager\n"
        "m = get_plugin_manager()\n"
        "assert ('callback', 'tensorboard') in m.registry.components\n"
        "assert ('callback', 'mlflow') in m.registry.components\n"
        "heavy = [name for name in ('tensorboardX', 'mlflow', 'matplotlib', 'PIL') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
