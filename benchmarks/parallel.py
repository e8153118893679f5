"""Samples per second and accuracy of the update strategies: serial, sync and async (1 and 2 workers).

    flock /tmp/numpyml-cpu.lock uv run --no-sync python benchmarks/parallel.py [--epochs 3] [--cnn-epochs 1]

Networks (real MNIST from NUMPYML_DATA_DIR, the last 10,000 training images held out for the
accuracy figure):

* MLP: the seed network, 784-100 sigmoid-10 softmax, SGD lr 0.5, batch 32 (experiments/mnist.toml);
* CNN (only when a ``conv2d`` layer is registered): conv2d 16 5x5 + relu, 2x2 pooling, conv2d 32 5x5
  + relu, 2x2 pooling, dense 10 softmax, SGD lr 0.05 with momentum 0.9, batch 32, trained on the
  first 10,000 training images (``--cnn-train``) to keep the run short.

When Ray is installed (``numpyml[ray]``), the table also has ``ray_sync`` and ``ray_async`` with 1 and
2 workers on a local Ray instance started per row, and with 2 workers on a simulated two-node
cluster on loopback (``ray.cluster_utils.Cluster``, one CPU per node); ``--no-ray`` and
``--no-cluster`` leave them out.

Everything runs through the real trainer. ``samples/s`` counts training samples over the epochs'
training time (evaluation excluded; the workers' start, about a second, is not in it either: it
happens once per run, in ``setup``, shown as ``setup s``). ``serial`` uses NumPy's default BLAS
threads (all cores); ``serial 1 BLAS`` is the same run in a fresh process with one BLAS thread;
every worker uses one. **Every run is a fresh process** (``--row``), so threads and worker processes
left behind by one row cannot slow down the next. ``speed-up`` is relative to ``serial``. Accuracy is on the held-out 10,000
after the fixed number of epochs, same seed for every strategy. Every row runs ``--repeats``
times (3), the rows taking turns, and shows its best rate (with that run's accuracy and setup
time), then every run's rate: on a shared host a busy spell then slows one run of each row rather
than one row. Run it alone on the machine (``flock``), or the figures say more about the
neighbours than about numpyml.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

import numpyml_core as nm

import numpy as np
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import evaluate, prepare, train

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                         "VECLIB_MAXIMUM_THREADS")

STRATEGIES = [
    ("serial", {"type": "serial"}),
    ("sync 1", {"type": "sync", "workers": 1}),
    ("sync 2", {"type": "sync", "workers": 2}),
    ("sync 2, 3 proc", {"type": "sync", "workers": 2, "local_share": False, "spin_ms": 0.0}),
    ("async 1", {"type": "async", "workers": 1, "staleness": "dc", "local_share": False}),
    ("async 2", {"type": "async", "workers": 2, "staleness": "dc"}),
    ("async 2, 3 proc", {"type": "async", "workers": 2, "staleness": "dc", "local_share": False, "spin_ms": 0.0}),
]

MLP_LAYERS = [
    {"type": "flatten"},
    {"type": "dense", "units": 100, "activation": "sigmoid"},
    {"type": "dense", "units": 10, "activation": "softmax"},
]

CNN_LAYERS = [
    {"type": "conv2d", "filters": 16, "kernel_size": 5, "activation": "relu", "weight_initializer": "he"},
    {"type": "pool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 32, "kernel_size": 5, "activation": "relu", "weight_initializer": "he"},
    {"type": "pool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10, "activation": "softmax"},
]


def experiment(layers: list, optimizer: dict, strategy: dict, epochs: int, batch_size: int) -> dict:
    return {
        "name": "bench-parallel", "seed": 6942,
        "dataset": {"type": "mnist", "download": False, "validation": 10000},
        "model": {"layers": layers},
        "cost": {"type": "cross_entropy"},
        "optimizer": optimizer,
        "training": {"epochs": epochs, "batch_size": batch_size, "eval_splits": [], "strategy": strategy},
    }


def measure(data: dict, data_dir: str, train_samples: int | None) -> tuple[float, float, float]:
    """(samples per second, held-out accuracy, seconds of setup) of one run."""
    exp = nm.Experiment.from_dict(data, source="benchmarks/parallel.py")
    run = prepare(exp.spec, exp.manager, data_dir=data_dir)  # not nm.run: the split and the setup are instrumented
    if train_samples is not None:
        run.splits["train"] = run.splits["train"].subset(0, train_samples)
    setup_seconds = 0.0
    strategy_setup = run.strategy.setup

    def timed_setup(r):
        nonlocal setup_seconds
        started = time.perf_counter()
        strategy_setup(r)
        setup_seconds = time.perf_counter() - started

    run.strategy.setup = timed_setup
    train(run)
    seconds = sum(row["seconds"] for row in run.history)
    samples = len(run.splits["train"]) * len(run.history)
    accuracy = evaluate(run.model, run.cost, run.splits["validation"])["accuracy"]
    return samples / seconds, accuracy, setup_seconds


def measure_in_process(net: str, strategy: dict | None, args: argparse.Namespace) -> tuple[float, float, float]:
    """:func:`measure` of one row in a fresh process; ``strategy`` ``None``: serial with one BLAS
    thread (the thread variables set before NumPy loads)."""
    env = dict(os.environ)
    if strategy is None:
        env.update({name: "1" for name in BLAS_THREAD_VARIABLES})
        strategy = {"type": "serial"}
    command = [sys.executable, __file__, "--row", net, "--strategy", json.dumps(strategy), "--epochs",
               str(args.epochs), "--cnn-epochs", str(args.cnn_epochs), "--cnn-train", str(args.cnn_train),
               "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the row {strategy} on {net} failed:\n{done.stderr}")
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def _bench_run(data_dir: str, batch_size: int) -> Any:
    """A prepared serial run of the MLP (real MNIST), for the timings of :func:`share_bound`."""
    exp = nm.Experiment.from_dict(experiment(MLP_LAYERS, {"type": "sgd", "learning_rate": 0.5}, {"type": "serial"}, 1,
                                             batch_size), source="benchmarks/parallel.py")
    return prepare(exp.spec, exp.manager, data_dir=data_dir)


def _best_us(function: Callable[[], Any], repeats: int = 2000) -> float:
    """Microseconds per call of ``function``: the best of 5 rounds of ``repeats`` calls."""
    for _ in range(200):
        function()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            function()
        times.append((time.perf_counter() - started) / repeats)
    return 1e6 * min(times)


def _other_half(data_dir: str, batch_size: int, ready: Any, stop: Any) -> None:
    """Child of :func:`share_bound` (one BLAS thread): the pass over the second half of a batch,
    over and over until ``stop`` is set, the way the other core would compute it in ``sync 2``
    (with nothing handed over at all)."""
    run = _bench_run(data_dir, batch_size)
    x, y = run.splits["train"].batch(np.arange(batch_size))
    half = batch_size // 2
    x, y = x[half:], y[half:]
    for _ in range(200):
        run.model.loss_and_gradients(x, y, run.cost)
    ready.wait()
    while not stop.is_set():
        run.model.loss_and_gradients(x, y, run.cost)


def share_bound(data_dir: str, batch_size: int) -> None:
    """The best 2-worker ``sync`` can do on the MLP here, timed in this process.

    ``sync 2`` needs per batch at least: the forward and backward pass of half a batch on one BLAS
    thread *while the other core computes the other half* (timed with a second process computing
    half passes non-stop, so the two compete for the shared cache and memory as they do in a
    run), then, one after the other, adding the other share's gradients and the optimizer step
    (on the parameters the worker reads: ``sync`` copies none). No hand-over is timed: a real
    ``sync`` can only be slower. Divided into serial's whole step (``train_batch``) with NumPy's BLAS threads, and with
    one BLAS thread (one process on one core), it bounds sync's speed-up from above."""
    import multiprocessing

    from threadpoolctl import threadpool_limits
    from numpyml_parallel._pool import _worker_environment

    run = _bench_run(data_dir, batch_size)
    x, y = run.splits["train"].batch(np.arange(batch_size))
    half = batch_size // 2

    step = _best_us(lambda: run.strategy.train_batch(run, x, y))
    with threadpool_limits(1, user_api="blas"):
        step_one = _best_us(lambda: run.strategy.train_batch(run, x, y))
        share = _best_us(lambda: run.model.loss_and_gradients(x[:half], y[:half], run.cost))
    params, grads = run.model.params(), run.model.grads()
    others = {name: grad.copy() for name, grad in grads.items()}

    def rest() -> None:  # what sync does after the shares, in the training process (it steps the
        for name, grad in grads.items():  # shared parameters themselves: no copy for the worker)
            grad += others[name]
        run.optimizer.step(params, grads)

    after = _best_us(rest)

    context = multiprocessing.get_context("spawn")
    ready, stop = context.Barrier(2), context.Event()
    with _worker_environment(1):  # one BLAS thread, as the parallel plugin starts its workers
        other = context.Process(target=_other_half, args=(data_dir, batch_size, ready, stop), daemon=True)
        other.start()
    try:
        ready.wait(timeout=120)
        with threadpool_limits(1, user_api="blas"):
            both = _best_us(lambda: run.model.loss_and_gradients(x[:half], y[:half], run.cost))
    finally:
        stop.set()
        other.join(10)
        if other.is_alive():
            other.kill()
    least = both + after
    print(f"per batch of {batch_size} (best of 5 x 2000, same process): serial step {step:.0f} us with NumPy's "
          f"BLAS threads, {step_one:.0f} us on 1 BLAS thread; so 1.6x needs <= {step / 1.6:.0f} us")
    print(f"  sync 2 needs at least {least:.0f} us = forward + backward of {half} samples on 1 BLAS thread "
          f"while the other core computes the other {batch_size - half} ({both:.0f} us; {share:.0f} us alone) "
          f"+ gradient sum and optimizer step {after:.0f} us")
    print(f"  best possible sync 2, with free hand-overs: {step / least:.2f}x serial, "
          f"{step_one / least:.2f}x one process on one core")


def ray_rows(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """The Ray strategies with 1 and 2 workers on a local Ray instance, and on a simulated two-node
    cluster on loopback (``ray.cluster_utils.Cluster``) when ``args.cluster_address`` is set."""
    if not args.ray:
        return []
    rows = []
    for kind, extra in (("ray_sync", {}), ("ray_async", {"staleness": "dc"})):
        for workers in (1, 2):
            rows.append((f"{kind} {workers}", {"type": kind, "workers": workers, **extra}))
    if args.cluster_address:
        for kind, extra in (("ray_sync", {}), ("ray_async", {"staleness": "dc"})):
            rows.append((f"{kind} 2 (2 nodes)", {"type": kind, "workers": 2, "address": args.cluster_address,
                                                 **extra}))
    return rows


def table(title: str, net: str, args: argparse.Namespace, data_dir: str) -> None:
    """One table: every row measured ``args.repeats`` times, the rows taking turns (so a busy
    spell of the host hits every row alike), each row's best rate shown."""
    layers, optimizer, epochs, train_samples = NETS[net](args)
    batch_size = args.batch_size
    print(f"\n{title}: batch {batch_size}, {epochs} epoch(s)"
          f"{f' on {train_samples} training images' if train_samples else ' on 50,000 training images'}"
          f", best of {args.repeats} run(s) per row, rows taking turns")
    rows = [(name, strategy) for name, strategy in STRATEGIES] + ray_rows(args)
    rows.insert(1, ("serial 1 BLAS", None))
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in rows}
    for _ in range(args.repeats):
        for name, strategy in rows:
            if strategy is not None and strategy.get("address") == "two-node cluster":
                strategy = {**strategy, "address": cluster_address()}
            results[name].append(measure_in_process(net, strategy, args))
    width = max(14, *(len(name) for name, _ in rows))
    print(f"{'strategy':<{width}} {'samples/s':>10} {'speed-up':>9} {'accuracy':>9} {'setup s':>8}"
          + ("   all runs (samples/s)" if args.repeats > 1 else ""))
    base = max(rate for rate, _, _ in results[rows[0][0]])
    for name, _ in rows:
        rate, accuracy, setup = max(results[name])
        runs = "   " + " ".join(f"{r:.0f}" for r, _, _ in results[name]) if args.repeats > 1 else ""
        print(f"{name:<{width}} {rate:>10.0f} {rate / base:>8.2f}x {100 * accuracy:>8.2f}% {setup:>8.2f}{runs}")
    sys.stdout.flush()


NETS = {
    "mlp": lambda args: (MLP_LAYERS, {"type": "sgd", "learning_rate": 0.5}, args.epochs, None),
    "cnn": lambda args: (CNN_LAYERS, {"type": "sgd", "learning_rate": 0.05, "momentum": 0.9}, args.cnn_epochs,
                         args.cnn_train),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="MLP epochs per strategy")
    parser.add_argument("--cnn-epochs", type=int, default=1, help="CNN epochs per strategy")
    parser.add_argument("--cnn-train", type=int, default=10000, help="CNN training images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per row, the rows taking turns; each row shows its best (default 3)")
    parser.add_argument("--bound-only", action="store_true",
                        help="print only the best sync 2 can do on the MLP (no training runs)")
    parser.add_argument("--row", choices=sorted(NETS), help=argparse.SUPPRESS)  # internal: one run of one row
    parser.add_argument("--strategy", default='{"type": "serial"}', help=argparse.SUPPRESS)
    parser.add_argument("--no-ray", dest="ray", action="store_false",
                        help="leave out the Ray strategies (they are measured when Ray is installed)")
    parser.add_argument("--no-cluster", dest="cluster", action="store_false",
                        help="leave out the simulated two-node Ray cluster")
    args = parser.parse_args()
    args.cluster_address = None
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray  # noqa: F401
    except ImportError:
        if args.ray:
            print("Ray is not installed: the ray_sync/ray_async rows are left out (pip install 'numpyml[ray]')")
        args.ray = False
    args.cluster_address = "two-node cluster" if args.ray and args.cluster and not args.row else None
    try:
        run_tables(args)
    finally:
        if _CLUSTER:
            _CLUSTER[0].shutdown()


_CLUSTER: list = []


def cluster_address() -> str:
    """Start (once) a simulated two-node Ray cluster on loopback: one CPU per node."""
    if not _CLUSTER:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        _CLUSTER.append(cluster)
    return _CLUSTER[0].address


def run_tables(args: argparse.Namespace) -> None:

    data_dir = os.environ.get("NUMPYML_DATA_DIR")
    if not data_dir or not os.path.exists(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte.gz")):
        sys.exit("benchmarks/parallel.py needs real MNIST: set NUMPYML_DATA_DIR to a folder holding mnist/")
    if args.row:
        layers, optimizer, epochs, train_samples = NETS[args.row](args)
        print(json.dumps(measure(experiment(layers, optimizer, json.loads(args.strategy), epochs, args.batch_size),
                                 data_dir, train_samples)))
        return
    if args.bound_only:
        share_bound(data_dir, args.batch_size)
        return
    manager = get_plugin_manager()
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs; workers use 1 BLAS thread each; async uses staleness = dc")
    table("MNIST MLP 784-100-10", "mlp", args, data_dir)
    share_bound(data_dir, args.batch_size)
    if ("layer", "conv2d") in manager.registry.components:
        table("MNIST CNN conv16-pool-conv32-pool-10", "cnn", args, data_dir)
    else:
        print("\nMNIST CNN: skipped, no 'conv2d' layer is registered (plugins/numpyml_conv not installed?)")


if __name__ == "__main__":
    main()
