"""Looking at runs: the HTML report, `numpyml runs`, `numpyml show`, on real short blobs runs."""

from __future__ import annotations

import base64
import json
import re
import sys

import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core.cli import app
from numpyml_report.rundata import compare_configs, flatten, sparkline

from blobs import EXPERIMENT
from conftest import require_extra


# noisier blobs, so that the models make mistakes to show (and the report must create the dataset with the
# run's own [dataset] parameters to reproduce the run's test accuracy)
NOISY = EXPERIMENT.replace('type = "fakeplug_blobs"', 'type = "fakeplug_blobs"\nnoise = 110.0')
SCHEDULED = NOISY.replace('name = "blobs"', 'name = "blobs-cosine"').replace(
    "learning_rate = 0.1", "learning_rate = 0.2") + '[training.schedule]\ntype = "cosine"\n'


@pytest.fixture
def two_runs(blobs_experiment, tmp_path):
    """Two finished blobs runs that differ in the learning rate and schedule, in tmp/runs/."""
    folder = tmp_path / "runs"
    paths = []
    for name, text in (("plain", NOISY), ("cosine", SCHEDULED)):
        run_dir = nm.run(blobs_experiment(base=text, name=name), output=folder / name, progress=False).run_dir
        paths.append(run_dir)
    return paths


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return {alt: base64.b64decode(data) for alt, data in found}


def test_report_of_two_runs_has_every_plot_and_table(two_runs, tmp_path):
    require_extra("matplotlib")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", *map(str, two_runs), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "written to" in result.stdout
    page = out.read_text()
    images = _images(page)
    assert set(images) == {"loss curves", "accuracy curves", "learning rate per epoch", "seconds per epoch",
                           "confusion matrix of plain on the test split",
                           "confusion matrix of cosine on the test split",
                           "most confidently misclassified test images of plain",
                           "most confidently misclassified test images of cosine"}
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000 for data in images.values())
    assert "http://" not in page.replace("http://www.w3.org", "") and "<script" not in page  # self-contained
    # the summary: both runs, their test accuracy
    for run_dir in two_runs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert 0.3 < summary["test_accuracy"] < 1.0
        right = round(summary["test_accuracy"] * 300)
        # the summary table and the test section (recomputed from the model) agree with the run
        assert page.count(f"{100 * summary['test_accuracy']:.2f}%") >= 2
        assert f"300 test samples, {right} right" in page
    # the configs side by side: the differing rows highlighted, the equal ones not
    rows = {key: flag for flag, key in re.findall(r'<tr( class="diff")?><td>([^<]+)</td>', page)}
    assert rows["optimizer.learning_rate"] == ' class="diff"' and rows["name"] == ' class="diff"'
    assert rows["training.schedule.type"] == ' class="diff"'
    assert rows["optimizer.momentum"] == "" and rows["model.layers[1].units"] == ""
    assert "(not set)" in page  # the plain run has no schedule


def test_report_of_one_run_defaults_to_the_run_folder(two_runs):
    require_extra("matplotlib")
    result = CliRunner().invoke(app, ["report", str(two_runs[0])], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = (two_runs[0] / "report.html").read_text()
    assert "learning rate per epoch" not in page  # no schedule in this run
    assert {"loss curves", "accuracy curves", "confusion matrix of plain on the test split"} <= set(_images(page))
    assert '<table class="config">' in page and 'class="diff"' not in page


def test_report_notes_missing_test_data_and_still_renders(two_runs, tmp_path):
    require_extra("matplotlib")
    (two_runs[0] / "model.safetensors").unlink()
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(two_runs[0]), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "No model.safetensors" in page and "loss curves" in page


def test_report_without_matplotlib_says_how_to_install(two_runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = CliRunner().invoke(app, ["report", str(two_runs[0])])
    assert result.exit_code == 2
    assert "pip install 'numpyml[plot]'" in result.stderr and "Traceback" not in result.output
    assert not (two_runs[0] / "report.html").exists()


@pytest.mark.parametrize("matplotlib", ["installed", "missing"])
def test_report_rejects_a_folder_that_is_not_a_run(tmp_path, monkeypatch, matplotlib):
    if matplotlib == "missing":  # the arguments are checked before the optional import (issue 15, item 0)
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a run folder" in result.stderr
    assert "matplotlib" not in result.stderr


def test_runs_table_and_sorting(two_runs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["runs", str(tmp_path / "runs")], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for header in ("NAME", "DATE", "EPOCHS", "BEST VAL ACC", "TEST ACC", "TIME"):
        assert header in result.stdout
    assert "plain" in result.stdout and "cosine" in result.stdout

    listed = json.loads(runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json", "--sort", "name"]).stdout)
    assert [r["name"] for r in listed] == ["cosine", "plain"]
    assert all(r["epochs"] == 2 and r["finished"] for r in listed)
    summary = json.loads((two_runs[1] / "summary.json").read_text())
    assert listed[0]["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert listed[0]["best_validation_accuracy"] == pytest.approx(summary["best_validation_accuracy"])

    by_test = json.loads(runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json", "--sort", "test"]).stdout)
    accuracies = [r["test_accuracy"] for r in by_test]
    assert accuracies == sorted(accuracies, reverse=True)
    reverse = json.loads(runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json", "-s", "name", "-r"]).stdout)
    assert [r["name"] for r in reverse] == ["plain", "cosine"]

    bad = runner.invoke(app, ["runs", str(tmp_path / "runs"), "--sort", "tset"])
    assert bad.exit_code == 2 and "did you mean 'test'" in bad.stderr


def test_runs_lists_unfinished_runs_and_empty_folders(two_runs, tmp_path):
    (two_runs[0] / "summary.json").unlink()
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json"]).stdout)
    unfinished = next(r for r in listed if r["name"] == "plain")
    assert not unfinished["finished"] and unfinished["epochs"] == 2 and unfinished["test_accuracy"] is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["runs", str(empty)])
    assert result.exit_code == 0 and "no runs" in result.stdout
    missing = runner.invoke(app, ["runs", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such folder" in missing.stderr


def test_show_prints_summary_and_sparklines(two_runs):
    result = CliRunner().invoke(app, ["show", str(two_runs[1])], env={"COLUMNS": "160"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "cosine" in out and "fakeplug_blobs" in out and "test accuracy" in out
    for metric in ("train_loss", "validation_accuracy", "test_loss", "learning_rate", "seconds"):
        assert metric in out
    assert re.search(r"train_loss\s+│\s+[▁▂▃▄▅▆▇█]{2}\s", out)


def test_learning_rate_is_recomputed_per_step_and_matches_the_metrics(two_runs):
    from numpyml_core.plugins import get_plugin_manager
    from numpyml_report.html import schedule_curve
    from numpyml_report.rundata import load_run

    plain, cosine = (load_run(path) for path in two_runs)
    assert schedule_curve(plain, get_plugin_manager()) is None  # no schedule
    x, rates = schedule_curve(cosine, get_plugin_manager())
    assert len(x) == 2 * 63 and x[-1] == pytest.approx(2.0)
    assert rates[0] == pytest.approx(0.2, rel=1e-3)  # cosine starts at the optimizer's rate
    # the rate in force at the end of each epoch is what metrics.csv recorded
    assert [rates[62], rates[-1]] == pytest.approx(cosine.metrics["learning_rate"])


def test_sparkline_and_config_helpers():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0, 1.0]) == "▄▄"
    assert sparkline([float("nan")]) == ""
    assert len(sparkline(list(range(100)), width=20)) == 20
    assert flatten({"a": {"b": 1}, "layers": [{"type": "x"}], "l": [1, 2]}) == {
        "a.b": 1, "layers[0].type": "x", "l": [1, 2]}
    rows = compare_configs([{"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}])
    assert rows == [("a", [1, 1], False), ("b", [2, 3], True), ("c", [None, 4], True)]


def test_predict_checks_the_model_before_the_optional_import(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # as without the plot extra
    missing = tmp_path / "nothing.safetensors"
    result = CliRunner().invoke(app, ["predict", str(missing), str(tmp_path / "x.png")])
    assert result.exit_code == 2 and str(missing) in result.stderr
    assert "Pillow" not in result.stderr


def test_runs_and_show_print_names_literally(tmp_path):
    """Run names and config values are printed as written, never read as rich markup (issue 15, item 28)."""
    run = tmp_path / "runs" / "[bold]mine[dim]"
    run.mkdir(parents=True)
    (run / "config.toml").write_text('name = "pip install \'numpyml[ray]\'"\n')
    (run / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,0.25\n")
    listed = CliRunner().invoke(app, ["runs", str(tmp_path / "runs")], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert listed.exit_code == 0 and "[bold]mine[dim]" in listed.stdout
    shown = CliRunner().invoke(app, ["show", str(run)], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert shown.exit_code == 0
    assert "[bold]mine[dim]" in shown.stdout and "pip install 'numpyml[ray]'" in shown.stdout
