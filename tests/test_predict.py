"""`numpyml predict`: class probabilities of image files under a trained model."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import numpyml_core as nm
from numpyml_core.cli import app

from conftest import require_extra


@pytest.fixture
def trained(blobs_experiment, tmp_path):
    """A run folder with a model trained on the 6x6x1 blobs, and the blobs test split."""
    run_dir = nm.run(blobs_experiment(), output=tmp_path / "run", progress=False).run_dir
    from numpyml_core.plugins import get_plugin_manager

    test = get_plugin_manager().create("dataset", "fakeplug_blobs").load(None)["test"]
    return run_dir, test


def _model_predictions(run_dir, x_uint8):
    from numpyml_core.serialization import load_model

    model, _ = load_model(run_dir / "model.safetensors")
    return model.predict(x_uint8.astype(np.float32) / 255)


def test_predict_any_size_and_mode_matches_the_model(trained, tmp_path):
    Image = require_extra("PIL.Image")
    run_dir, test = trained
    images = test.x[:6]  # (6, 6, 6, 1) uint8
    paths = []
    for i, image in enumerate(images):
        gray = image[..., 0]
        big = np.kron(gray, np.ones((4, 4), np.uint8))  # 24x24: area-averaging it back gives the original
        modes = [Image.fromarray(np.stack([big] * 3, axis=-1)),  # colour
                 Image.fromarray(big).convert("RGBA"),  # with (opaque) alpha
                 Image.fromarray(big).convert("P"),  # palette
                 Image.fromarray(big.astype(np.uint16) * 257),  # 16-bit (I;16)
                 Image.fromarray(big),
                 Image.fromarray(gray)]  # already the model's size
        path = tmp_path / f"image{i}.png"
        modes[i].save(path)
        paths.append(str(path))
    result = CliRunner().invoke(app, ["predict", str(run_dir / "model.safetensors"), *paths, "--json", "--top", "3",
                                      "--no-invert", "--no-center"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["input_shape"] == [6, 6, 1]
    expected = _model_predictions(run_dir, images)
    for result_row, probabilities in zip(data["results"], expected):
        predictions = result_row["predictions"]
        assert len(predictions) == 3 and not result_row["inverted"]
        assert predictions[0]["index"] == int(probabilities.argmax())
        assert predictions[0]["class"] == f"blob{probabilities.argmax()}"
        assert predictions[0]["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)
        assert predictions[0]["probability"] >= predictions[1]["probability"] >= predictions[2]["probability"]


def test_predict_text_output_and_run_folder_as_model(trained, tmp_path):
    Image = require_extra("PIL.Image")
    run_dir, test = trained
    path = tmp_path / "one.jpg"
    Image.fromarray(np.kron(test.x[0, ..., 0], np.ones((5, 5), np.uint8))).save(path, quality=95)
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(path), "--top", "2", "--no-invert", "--no-center"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(f"{path}: blob") and line.count("%") == 2


def test_light_background_is_inverted_automatically(trained, tmp_path):
    Image = require_extra("PIL.Image")
    run_dir, _ = trained
    dark_on_light = np.full((40, 30), 245, np.uint8)
    dark_on_light[10:30, 12:18] = 10  # a dark stroke on white paper, not square
    light_on_dark = 255 - dark_on_light
    Image.fromarray(dark_on_light).save(tmp_path / "paper.png")
    Image.fromarray(light_on_dark).save(tmp_path / "mnist_style.png")
    runner = CliRunner()
    args = ["predict", str(run_dir), str(tmp_path / "paper.png"), str(tmp_path / "mnist_style.png"), "--json"]
    auto = json.loads(runner.invoke(app, args, catch_exceptions=False).stdout)["results"]
    assert [r["inverted"] for r in auto] == [True, False]
    # inverted paper == the white-on-black image: the same probabilities
    assert auto[0]["predictions"] == auto[1]["predictions"]
    forced = json.loads(runner.invoke(app, [*args, "--invert"], catch_exceptions=False).stdout)["results"]
    assert [r["inverted"] for r in forced] == [True, True]
    never = json.loads(runner.invoke(app, [*args, "--no-invert", "--no-center"], catch_exceptions=False).stdout)["results"]
    assert [r["inverted"] for r in never] == [False, False]
    assert "--invert" in runner.invoke(app, ["predict", "--help"]).stdout


def test_center_like_mnist_crops_scales_and_centres_the_ink():
    require_extra("PIL")
    from numpyml_report.inference import center_like_mnist

    image = np.zeros((300, 200), np.uint8)
    image[20:120, 150:170] = 255  # a tall bar in the top-right corner
    out = center_like_mnist(image, 28, 28)
    rows, columns = np.nonzero(out > 60)
    assert rows.max() - rows.min() + 1 == 20  # the ink's longer side fills the 20-pixel box
    weights = out.astype(float)
    cy = (weights.sum(1) * np.arange(28)).sum() / weights.sum()
    cx = (weights.sum(0) * np.arange(28)).sum() / weights.sum()
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6  # centre of mass in the middle


def test_predict_errors_are_clear(trained, tmp_path):
    require_extra("PIL")
    run_dir, _ = trained
    runner = CliRunner()
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    result = runner.invoke(app, ["predict", str(run_dir), str(junk)])
    assert result.exit_code == 2 and "cannot be read as an image" in result.stderr
    result = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "missing.png")])
    assert result.exit_code == 2 and "no such image file" in result.stderr
    result = runner.invoke(app, ["predict", str(run_dir), str(junk), "--top", "0"])
    assert result.exit_code == 2 and "--top" in result.stderr


def test_predict_without_pillow_says_how_to_install(trained, tmp_path, monkeypatch):
    run_dir, _ = trained
    monkeypatch.setitem(sys.modules, "PIL", None)
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "pip install 'numpyml[plot]'" in result.stderr


def test_input_conversion_normalizes_like_the_dataset():
    from numpyml_report.inference import input_converter, to_probabilities

    class Normalized:
        normalize = True
        mean = (0.5, 0.25, 0.0)
        std = (0.5, 0.25, 1.0)

    x = np.array([[[[255, 0, 51]]]], np.uint8)
    assert input_converter(Normalized())(x).ravel().tolist() == pytest.approx([1.0, -1.0, 0.2])
    assert input_converter(None)(x).ravel().tolist() == pytest.approx([1.0, 0.0, 0.2])
    logits = np.array([[1.0, 2.0, -3.0]])
    assert to_probabilities(logits).sum() == pytest.approx(1.0)
    assert to_probabilities(np.array([[0.2, 0.8]])).tolist() == [[0.2, 0.8]]
