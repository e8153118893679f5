"""Seconds per training epoch of the 784-100-10 sigmoid/softmax MLP, numpyml vs PyTorch CPU, each in its own process.

    uv run --no-sync python benchmarks/mlp.py [--epochs 2] [--rounds 3] [--batch-sizes 32 128]

numpyml runs through the Python API (``numpyml_core.run``: what ``numpyml run`` does, serial strategy,
no evaluation; the trainer's epoch seconds exclude writing the run folder's files, and include the
per-batch work of the trainer, its hooks and the progress counters); PyTorch (when installed:
``uv pip install torch==2.13.0``) trains the same network with a plain hand-written loop on the same
data. **Every measurement is a fresh process** timing one framework (``--epochs`` epochs, the best
kept); the two take turns for ``--rounds`` rounds and each shows its best round. Uses real MNIST
when NUMPYML_DATA_DIR holds mnist/, else random data of the same size. Prints seconds per epoch and
the ratio numpyml / PyTorch (lower is better; the target of issue 20 is <= 0.65).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

if "--numpy-first" in sys.argv:  # the variant "NumPy imported first": before anything else
    import numpy  # noqa: F401

import numpyml_core as nm

import numpy as np
from numpyml_core.plugins import get_plugin_manager

from _common import SyntheticImages, register_dataset, run_child, torch_epoch_timer


class _SyntheticMNIST(SyntheticImages):
    """60,000 random 28x28 uint8 images with random labels (when real MNIST is absent)."""

    input_shape = (28, 28, 1)
    size = 60000


def experiment(dataset: str, batch_size: int, epochs: int) -> dict:
    return {
        "name": "bench-mlp", "seed": 0,
        "dataset": {"type": dataset, **({"download": False} if dataset == "mnist" else {})},
        "model": {"layers": [
            {"type": "flatten"},
            {"type": "dense", "units": 100, "activation": "sigmoid"},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ]},
        "cost": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "learning_rate": 0.05},
        "training": {"epochs": epochs, "batch_size": batch_size, "eval_splits": []},
    }


def numpyml_epoch_seconds(dataset: str, batch_size: int, epochs: int) -> tuple[float, object]:
    exp = nm.Experiment.from_dict(experiment(dataset, batch_size, epochs), source="benchmarks/mlp.py")
    with tempfile.TemporaryDirectory(prefix="bench-mlp-") as folder:
        result = nm.run(exp, output=folder, data_dir=os.environ.get("NUMPYML_DATA_DIR"), progress=False)
    return min(row["seconds"] for row in result.history), result.run.splits["train"]


def torch_epoch_seconds(split, batch_size: int, epochs: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    x = torch.from_numpy(split.x.reshape(len(split), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(split.y)
    model = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.Sigmoid(), torch.nn.Linear(100, 10))
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    best = float("inf")
    epoch = torch_epoch_timer(model, loss_fn, optimizer, x, y, batch_size)
    for _ in range(epochs):
        best = min(best, epoch())
    return best


def dataset_name() -> str:
    """``mnist`` when NUMPYML_DATA_DIR holds it, else random images of the same size (registered)."""
    data_dir = os.environ.get("NUMPYML_DATA_DIR")
    if data_dir and os.path.exists(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte.gz")):
        return "mnist"
    register_dataset(get_plugin_manager(), "bench_synthetic_mnist", _SyntheticMNIST)
    return "bench_synthetic_mnist"


def child(args: argparse.Namespace) -> None:
    """One measurement in this process: prints a JSON line ``{"seconds": best epoch, "info": ...}``."""
    dataset = dataset_name()
    if args.framework == "numpyml":
        seconds, _ = numpyml_epoch_seconds(dataset, args.child, args.epochs)
        info = f"data {dataset}; numpy {np.__version__}"
    else:
        import torch

        from numpyml_core.trainer import prepare

        exp = nm.Experiment.from_dict(experiment(dataset, args.child, 1), source="benchmarks/mlp.py")
        split = prepare(exp.spec, exp.manager, data_dir=os.environ.get("NUMPYML_DATA_DIR")).splits["train"]
        seconds = torch_epoch_seconds(split, args.child, args.epochs)
        info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(json.dumps({"seconds": seconds, "info": info}))


VARIANTS = {"numpyml": ("numpyml", []), "numpyml, NumPy first": ("numpyml", ["--numpy-first"]),
            "PyTorch": ("torch", [])}


def measure(batch_size: int, variant: str, args: argparse.Namespace) -> dict | None:
    framework, flags = VARIANTS[variant]
    command = [sys.executable, __file__, "--child", str(batch_size), "--framework", framework,
               "--epochs", str(args.epochs), *flags]
    return run_child(command, f"{variant} with batch {batch_size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per process (best is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per variant, the variants taking turns")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # internal: one measurement, this batch size
    parser.add_argument("--framework", choices=["numpyml", "torch"], default="numpyml", help=argparse.SUPPRESS)
    parser.add_argument("--numpy-first", action="store_true", help=argparse.SUPPRESS)  # read at the top
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"MLP 784-100-10 sigmoid/softmax, SGD; best of {args.epochs} epochs per process, best of {args.rounds} "
          f"processes per variant (variants alternate); load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'batch':>6} {'variant':<22} {'s/epoch':>8} {'vs PyTorch':>10}   rounds (s/epoch)")
    infos = set()
    for batch_size in args.batch_sizes:
        results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name in VARIANTS:
                result = measure(batch_size, name, args)
                if result is not None:
                    results[name].append(result)
                    infos.add(result["info"])
        theirs = min((r["seconds"] for r in results["PyTorch"]), default=None)
        for name, runs in results.items():
            if not runs:
                print(f"{batch_size:>6} {name:<22} {'n/a (not installed)':>20}")
                continue
            best = min(r["seconds"] for r in runs)
            ratio = f"{best / theirs:9.2f}x" if theirs else f"{'n/a':>10}"
            print(f"{batch_size:>6} {name:<22} {best:8.3f} {ratio}   " + " ".join(f"{r['seconds']:.3f}" for r in runs))
        sys.stdout.flush()
    print("; ".join(sorted(infos)))


if __name__ == "__main__":
    main()
