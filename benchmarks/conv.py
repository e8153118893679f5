"""Seconds per training epoch of two CNNs, numpyml vs PyTorch CPU, with the achieved GFLOP/s.

    uv run python benchmarks/conv.py [--batches 40] [--repeats 3] [--nets mnist cifar]

(a) MNIST: conv5x5(32) relu maxpool2 -> conv5x5(64) relu maxpool2 -> dense 128 relu -> dense 10,
    on 28x28x1 images, 60,000 per epoch;
(b) CIFAR: conv3x3(32, same) relu -> conv3x3(32, same) relu maxpool2 -> conv3x3(64, same) relu ->
    conv3x3(64, same) relu maxpool2 -> dense 256 relu -> dense 10, on 32x32x3 images, 50,000 per
    epoch; batch 64, SGD with momentum, softmax cross-entropy.

numpyml trains through the real trainer (experiment spec -> prepare -> train, serial strategy, no
evaluation) on ``--batches`` batches of random images per epoch; PyTorch (when installed) trains the
same network with a plain loop on the same data in the same process. The two alternate epoch by
epoch (so a spell of load from other processes hits both); the first epoch of each is a warm-up,
the best of the others is extrapolated to a full epoch. GFLOP/s counts
the multiply-adds of convolutions and dense layers (x2) in forward, weight gradient and input
gradient (none for the first layer). Targets: numpyml/PyTorch <= 1.3 on (a), <= 1.5 on (b).
"""

from __future__ import annotations

import argparse
import sys

import numpyml_core as nm  # first, as `numpyml` does: before NumPy (see blas.py)

import numpy as np  # noqa: E402
from numpyml_core.data import ArraySplit
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import prepare, train

from _common import SyntheticImages, register_dataset, torch_epoch_timer

BATCH = 64

NETS = {
    "mnist": {
        "title": "(a) MNIST LeNet-like", "input_shape": (28, 28, 1), "epoch_size": 60000,
        "layers": [
            {"type": "conv2d", "filters": 32, "kernel_size": 5, "activation": "relu"},
            {"type": "pool2d", "pool_size": 2},
            {"type": "conv2d", "filters": 64, "kernel_size": 5, "activation": "relu"},
            {"type": "pool2d", "pool_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 128, "activation": "relu"},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
    },
    "cifar": {
        "title": "(b) CIFAR VGG-like", "input_shape": (32, 32, 3), "epoch_size": 50000,
        "layers": [
            {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "pool2d", "pool_size": 2},
            {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "pool2d", "pool_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 256, "activation": "relu"},
            {"type": "dense", "units": 10, "activation": "softmax"},
        ],
    },
}


class _Synthetic(SyntheticImages):
    def __init__(self, net: str = "mnist", size: int = 640) -> None:
        self.input_shape = NETS[net]["input_shape"]
        self.size = size


def experiment(net: str, size: int, epochs: int) -> dict:
    return {
        "name": f"bench-conv-{net}", "seed": 0,
        "dataset": {"type": "bench_conv_synthetic", "net": net, "size": size},
        "model": {"layers": NETS[net]["layers"]},
        "cost": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "learning_rate": 0.01, "momentum": 0.9},
        "training": {"epochs": epochs, "batch_size": BATCH, "eval_splits": [], "shuffle": True},
    }


def training_flops(model) -> int:
    """Multiply-adds x2 per sample for one training step (forward + weight and input gradients)."""
    total = 0
    first = True
    for layer in model.layers:
        weight = getattr(layer, "params", {}).get("weight")
        if weight is None:
            continue
        if weight.ndim == 4:  # conv: every output position does kh*kw*in*out multiply-adds
            out_h, out_w = layer.out_hw
            forward = 2 * out_h * out_w * weight.size
        else:
            forward = 2 * weight.size
        total += forward * (2 if first else 3)
        first = False
    return total


def numpyml_epoch(net: str, batches: int):
    """A prepared run of one epoch of ``batches`` batches, and a function that trains it again
    (the same model, continuing) and returns the epoch's seconds as the trainer measured them."""
    exp = nm.Experiment.from_dict(experiment(net, batches * BATCH, 1), source="benchmarks/conv.py")
    run = prepare(exp.spec, exp.manager)  # not nm.run: the same prepared run is trained again for each timing

    def epoch() -> float:
        run.epoch = 0  # train() runs epochs run.epoch + 1 .. epochs
        train(run)
        return run.history[-1]["seconds"]

    return run, epoch


def torch_net(net: str):
    import torch
    from torch import nn

    if net == "mnist":
        return nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, 10),
        )
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def torch_epoch(net: str, split: ArraySplit):
    """A function that trains the PyTorch network for one epoch over ``split`` and returns the
    seconds (``None`` without PyTorch)."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    x = torch.from_numpy(split.x.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()  # NCHW
    y = torch.from_numpy(split.y)
    model = torch_net(net)
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return torch_epoch_timer(model, loss_fn, optimizer, x, y, BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="batches per timed epoch (extrapolated)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs after one warm-up (best is kept)")
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=["mnist", "cifar"])
    args = parser.parse_args()

    manager = get_plugin_manager()
    register_dataset(manager, "bench_conv_synthetic", _Synthetic)
    try:
        import torch
        torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_info = "PyTorch not installed: no reference"
    import os

    from numpyml_conv.parts import parallel_threads

    print(f"batch {BATCH}, {args.batches} batches per timed epoch, best of {args.repeats}; "
          f"numpy {np.__version__}, layers split over {parallel_threads()} threads "
          f"(OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}); {torch_info}")
    print(f"{'net':<22} {'numpyml s/epoch':>16} {'torch s/epoch':>14} {'ratio':>6} "
          f"{'numpyml GFLOP/s':>16} {'torch GFLOP/s':>14}")
    for net in args.nets:
        run, ours_epoch = numpyml_epoch(net, args.batches)
        theirs_epoch = torch_epoch(net, run.splits["train"])
        ours, theirs = [], []
        for repeat in range(args.repeats + 1):  # alternate, so a busy spell hits both; first = warm-up
            ours.append(ours_epoch())
            if theirs_epoch is not None:
                theirs.append(theirs_epoch())
        seconds = min(ours[1:])
        samples = args.batches * BATCH
        flops = training_flops(run.model)
        scale = NETS[net]["epoch_size"] / samples
        ours_rate = flops * samples / seconds / 1e9
        if theirs:
            best = min(theirs[1:])
            torch_text = f"{best * scale:14.2f}"
            ratio = f"{seconds / best:6.2f}"
            torch_rate = f"{flops * samples / best / 1e9:14.1f}"
        else:
            torch_text, ratio, torch_rate = f"{'n/a':>14}", f"{'n/a':>6}", f"{'n/a':>14}"
        print(f"{NETS[net]['title']:<22} {seconds * scale:16.2f} {torch_text} {ratio} {ours_rate:16.1f} {torch_rate}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
