"""Seconds per training epoch of the 784-100-10 sigmoid/softmax MLP, numpyml vs PyTorch CPU.

    uv run python benchmarks/mlp.py [--epochs 2] [--batch-sizes 32 128]

numpyml runs through the Python API (``numpyml_core.run``: what ``numpyml run`` does, serial strategy,
no evaluation; the trainer's epoch seconds exclude writing the run folder's files); PyTorch (when installed: ``pip install torch==2.13.0``) trains the same network with
a plain hand-written loop on the same data in the same process. Uses real MNIST when
NUMPYML_DATA_DIR holds mnist/, else random data of the same size. Prints seconds per epoch (best
of the measured epochs) and the ratio numpyml / PyTorch (lower is better; the target is <= 0.8).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpyml_core as nm  # first, as `numpyml` does: before NumPy (see blas.py)

import numpy as np  # noqa: E402
from numpyml_core.plugins import get_plugin_manager

from _common import SyntheticImages, register_dataset, torch_epoch_timer


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="epochs measured (best is reported)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    args = parser.parse_args()

    manager = get_plugin_manager()
    data_dir = os.environ.get("NUMPYML_DATA_DIR")
    if data_dir and os.path.exists(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte.gz")):
        dataset = "mnist"
    else:
        register_dataset(manager, "bench_synthetic_mnist", _SyntheticMNIST)
        dataset = "bench_synthetic_mnist"
    try:
        import torch
        torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_info = "PyTorch not installed: no reference (pip install torch==2.13.0)"
    print(f"MLP 784-100-10 sigmoid/softmax, SGD, data: {dataset}; numpy {np.__version__}; {torch_info}")
    print(f"{'batch':>6} {'numpyml s/epoch':>16} {'torch s/epoch':>14} {'ratio':>7}")
    for batch_size in args.batch_sizes:
        ours, split = numpyml_epoch_seconds(dataset, batch_size, args.epochs)
        theirs = torch_epoch_seconds(split, batch_size, args.epochs)
        ratio = f"{ours / theirs:7.2f}" if theirs else "    n/a"
        theirs_text = f"{theirs:14.3f}" if theirs else f"{'n/a':>14}"
        print(f"{batch_size:>6} {ours:16.3f} {theirs_text} {ratio}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
