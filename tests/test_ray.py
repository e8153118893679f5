"""The Ray strategies: local runs, a two-node cluster on loopback, equality with serial, faults.

Marked ``ray``: they need the optional extra (``numpyml[ray]``). Locally they skip without it; CI
installs the extra and sets NUMPYML_REQUIRE_REAL_DATA=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from numpyml_core import RunFailed, hookimpl
import numpyml_core as nm
from numpyml_core.serialization import load_tensors

from blobs import EXPERIMENT, SOURCE
from conftest import require_real_data, site_for_workers, write_dist

pytestmark = pytest.mark.ray

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # before ray is imported, as the strategies do

try:
    import ray
except ImportError:  # pragma: no cover - CI installs the extra
    ray = None



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The fake blobs dataset as an installed distribution, visible to Ray's worker processes."""
    if ray is None:
        require_real_data("Ray is not installed: pip install 'numpyml[ray]'")
    root = write_dist(tmp_path_factory.mktemp("site"), "fakeplug-blobs", "0.0.1", {"blobs": "fakeplug_blobs"},
                      {"fakeplug_blobs": SOURCE})
    with site_for_workers(root):
        yield root


@pytest.fixture(scope="module")
def local_ray(site):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def experiment(tmp_path: Path, strategy: str, epochs: int = 1) -> Path:
    path = tmp_path / f"{strategy.split()[0]}.toml"
    path.write_text(EXPERIMENT.replace("epochs = 3", f"epochs = {epochs}") + f"\n[training.strategy]\n{strategy}\n")
    return path


def test_ray_sync_equals_serial_up_to_rounding(local_ray, tmp_path):
    nm.run(experiment(tmp_path, 'type = "serial"'), output=tmp_path / "serial", progress=False)
    summary = nm.run(experiment(tmp_path, 'type = "ray_sync"\nworkers = 2'), output=tmp_path / "ray", progress=False).summary
    serial = load_tensors(tmp_path / "serial" / "model.safetensors")
    parallel = load_tensors(tmp_path / "ray" / "model.safetensors")
    for key in serial:
        np.testing.assert_allclose(parallel[key], serial[key], rtol=1e-4, atol=1e-5)
    assert not np.array_equal(serial["1.weight"], np.zeros_like(serial["1.weight"]))
    assert summary["steps"] == 63


class KillWorker:
    def __init__(self, at_step: int):
        self.at_step = at_step
        self.run = None

    @hookimpl
    def numpyml_on_batch_end(self, run):
        if run.step == self.at_step:
            ray.kill(run.strategy.actors[1], no_restart=True)


def test_ray_async_learns_and_reports_staleness(local_ray, tmp_path):
    summary = nm.run(experiment(tmp_path, 'type = "ray_async"\nworkers = 2\nstaleness = "dc"', 2),
                     output=tmp_path / "async", progress=False).summary
    assert summary["test_accuracy"] > 0.9


def test_a_killed_worker_fails_the_run_with_its_name(local_ray, tmp_path):
    started = time.monotonic()
    with pytest.raises(RunFailed, match=r"Ray worker 1 died"):
        nm.run(experiment(tmp_path, 'type = "ray_sync"\nworkers = 2'), output=tmp_path / "killed",
               callbacks=[KillWorker(5)], progress=False)
    assert time.monotonic() - started < 60


def _cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numpyml_core.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_unreachable_cluster_fails_within_seconds_naming_the_address(site, tmp_path):
    path = experiment(tmp_path, 'type = "ray_sync"\naddress = "127.0.0.1:9"\nconnect_timeout = 2.0')
    started = time.monotonic()
    result = _cli("run", str(path), "--output", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 1, result.stderr
    assert "127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


CLUSTER_SCRIPT = """
import json, sys
import ray
from ray.cluster_utils import Cluster
import numpyml_core as nm

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
seen = {}

from numpyml_core import hookimpl
class Where:
    @hookimpl
    def numpyml_on_run_start(self, run):
        seen["nodes"] = sorted({p["node"] for p in run.strategy.placements})

experiment, out = sys.argv[1], sys.argv[2]
try:
    summary = nm.run(experiment, output=out, callbacks=[Where()], progress=False).summary
finally:
    ray.shutdown()
    cluster.shutdown()
print(json.dumps({"nodes": seen["nodes"], "accuracy": summary["test_accuracy"]}))
"""


def test_two_node_cluster_on_loopback(site, tmp_path):
    import json

    path = experiment(tmp_path, 'type = "ray_sync"\nworkers = 2\naddress = "auto"')
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(path), str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=400, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["nodes"]) == 2  # one worker on each node
    assert report["accuracy"] > 0.9


@pytest.mark.realdata
def test_ray_async_accuracy_within_half_a_percent_of_serial_on_mnist(local_ray, mnist_dir, tmp_path):
    text = Path("experiments/mnist_ray.toml").read_text().replace("epochs = 10", "epochs = 2")
    ray_path = tmp_path / "ray.toml"
    ray_path.write_text(text)
    serial_path = tmp_path / "serial.toml"
    serial_path.write_text(text.replace('type = "ray_async"', 'type = "serial"').replace("workers = 2\n", "")
                           .replace('staleness = "dc"\n', ""))
    serial = nm.run(serial_path, data_dir=str(mnist_dir), output=tmp_path / "s", progress=False).summary
    parallel = nm.run(ray_path, data_dir=str(mnist_dir), output=tmp_path / "r", progress=False).summary
    assert parallel["test_accuracy"] >= serial["test_accuracy"] - 0.005
