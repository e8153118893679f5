"""examples/numpyml-localsgd, a third-party update strategy written with the public plugin API only.

The example is used as installed: CI installs it (``uv pip install -e examples/numpyml-localsgd``) and
runs this file again; without that install, the fixture installs it the way an editable install
does (its folder on the path, a ``.dist-info`` with the entry points of its pyproject.toml), so the
main suite always runs it. tests/test_architecture.py checks that it imports only the public API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import numpyml_core as nm

from blobs import EXPERIMENT, SOURCE

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "numpyml-localsgd"
PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]


def _dist_info(root: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[numpyml]\n{lines}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example installed (by CI, or here), and the fake blobs dataset; also for subprocesses."""
    root = tmp_path_factory.mktemp("site")
    paths = [str(root)]
    try:
        metadata.distribution(PROJECT["name"])
    except metadata.PackageNotFoundError:
        _dist_info(root, PROJECT["name"], PROJECT["version"], PROJECT["entry-points"]["numpyml"])
        paths.append(str(EXAMPLE))
    _dist_info(root, "fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs"})
    (root / "fakeplug_blobs.py").write_text(textwrap.dedent(SOURCE))
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([old_path] if old_path else [])])
    sys.path[:0] = paths
    yield root
    for path in paths:
        sys.path.remove(path)
    for module in [m for m in sys.modules if m.startswith(("numpyml_localsgd", "fakeplug_blobs"))]:
        del sys.modules[module]
    if old_path is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_path


def test_numpyml_lists_it_under_its_own_distribution(site):
    result = subprocess.run([sys.executable, "-m", "numpyml_core.cli", "list", "--json"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    mine = [c for c in data["components"] if c["distribution"] == PROJECT["name"]]
    assert [(c["kind"], c["name"], c["plugin"], c["version"]) for c in mine] == [
        ("strategy", "local_sgd", "localsgd", PROJECT["version"])]
    assert data["failed"] == []


def blobs_run(tmp_path: Path, strategy: str, name: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(EXPERIMENT.replace("momentum = 0.9", "") + f"\n[training.strategy]\n{strategy}\n")
    return nm.run(path, output=tmp_path / name, progress=False)


def test_one_local_step_is_sync_so_it_follows_serial(site, tmp_path):
    """With ``local_steps = 1`` and plain SGD, averaging the replicas' steps is one step on the batch's
    gradient: the parameters follow ``serial`` up to float rounding (the last batch of 8 samples too)."""
    serial = blobs_run(tmp_path, 'type = "serial"', "serial")
    local = blobs_run(tmp_path, 'type = "local_sgd"\nworkers = 3\nlocal_steps = 1', "local")
    assert local.summary["steps"] == serial.summary["steps"] == 3 * 63
    ours, theirs = local.run.model.params(), serial.run.model.params()
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert local.summary["train_loss"] == pytest.approx(serial.summary["train_loss"], rel=1e-4)


def test_local_steps_exchange_less_and_still_learn(site, tmp_path):
    """Four local steps per round: one outer update (one numpyml_before_update call) per four batches."""
    from numpyml_core import hookimpl

    class Count:
        calls = 0

        @hookimpl
        def numpyml_before_update(self):
            Count.calls += 1

    path = tmp_path / "four.toml"
    path.write_text(EXPERIMENT.replace("momentum = 0.9", "").replace("epochs = 3", "epochs = 2")
                    + '\n[training.strategy]\ntype = "local_sgd"\nworkers = 2\nlocal_steps = 4\n')
    result = nm.run(path, output=tmp_path / "four", progress=False, callbacks=[Count()])
    assert Count.calls == 2 * 16  # 63 batches an epoch: 15 full rounds and one of 3, averaged at the epoch's end
    assert result.summary["test_accuracy"] > 0.9


@pytest.mark.realdata
def test_its_mnist_experiment_reaches_90_percent(site, mnist_dir, tmp_path):
    """The example's experiment: the seed MLP, 4 replicas, 4 local steps, one epoch on 20,000 images."""
    result = nm.run(EXAMPLE / "experiments" / "mnist_local_sgd.toml", data_dir=str(mnist_dir),
                    output=tmp_path / "mnist", progress=False)
    assert result.summary["test_accuracy"] >= 0.90
    assert result.run.spec.strategy.type == "local_sgd"
