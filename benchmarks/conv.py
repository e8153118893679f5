"""Milliseconds per training batch of two CNNs, numpyml vs PyTorch CPU, each timed in its own process.

    uv run --no-sync python benchmarks/conv.py [--batches 40] [--repeats 3] [--rounds 3] [--nets mnist cifar]

(a) MNIST: conv5x5(32) relu maxpool2 -> conv5x5(64) relu maxpool2 -> dense 128 relu -> dense 10,
    on 28x28x1 images;
(b) CIFAR: conv3x3(32, same) relu -> conv3x3(32, same) relu maxpool2 -> conv3x3(64, same) relu ->
    conv3x3(64, same) relu maxpool2 -> dense 256 relu -> dense 10, on 32x32x3 images;
batch 64, SGD with momentum, softmax cross-entropy, ``--batches`` batches of random images per epoch.

numpyml trains through the real trainer (experiment spec -> prepare -> train, serial strategy, no
evaluation); PyTorch (when installed: ``uv pip install torch==2.13.0``) trains the same network with a
plain loop on the same data. **Every measurement is a fresh process** that times one framework only
(a warm-up epoch, then ``--repeats`` epochs, the best kept): threads left behind by one framework
(OpenBLAS's spinning workers, thread pools) cannot slow the other down, which timing both in one
process did (PyTorch's MNIST batch took 23 ms after numpyml's in one process against 7.9 ms alone).
The variants run one after the other in each of ``--rounds`` rounds (so a busy spell of the host
hits one round of every variant rather than all rounds of one), and each shows its best round:

* ``numpyml``: ``numpyml_core`` imported first (as the ``numpyml`` command does);
* ``numpyml, NumPy first``: ``import numpy`` before ``numpyml_core`` (as most scripts and notebooks do);
* ``numpyml, OPENBLAS_THREAD_TIMEOUT=28`` (``--timeout-variant``): the variable set in the environment;
* ``PyTorch``: its default threads (one per core).

GFLOP/s counts the multiply-adds of convolutions and dense layers (x2) in forward, weight gradient
and input gradient (none for the first layer). Targets (issue 20): numpyml / PyTorch <= 1.5 on both
nets; NumPy first / numpyml first <= 1.1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

if "--numpy-first" in sys.argv:  # the variant "NumPy imported first": before anything else
    import numpy  # noqa: F401

import numpyml_core as nm

import numpy as np
from numpyml_core.data import ArraySplit
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import prepare, train

from _common import SyntheticImages, register_dataset, run_child, torch_epoch_timer

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


VARIANTS = {
    "numpyml": ("numpyml", [], {}),
    "numpyml, NumPy first": ("numpyml", ["--numpy-first"], {}),
    "numpyml, OPENBLAS_THREAD_TIMEOUT=28": ("numpyml", [], {"OPENBLAS_THREAD_TIMEOUT": "28"}),
    "PyTorch": ("torch", [], {}),
}


def child(args: argparse.Namespace) -> None:
    """One measurement in this process: prints a JSON line with the best and every epoch's
    milliseconds per batch (after one warm-up epoch), and numpyml's count of FLOP per sample."""
    if args.framework == "numpyml":
        manager = get_plugin_manager()
        register_dataset(manager, "bench_conv_synthetic", _Synthetic)
        run, epoch = numpyml_epoch(args.child, args.batches)
        flops = training_flops(run.model)
        info = f"numpy {np.__version__}"
    else:
        import torch

        from _common import synthetic_split

        epoch = torch_epoch(args.child, synthetic_split(NETS[args.child]["input_shape"], args.batches * BATCH))
        flops = None  # the same network: the parent uses numpyml's count
        info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    epoch()  # warm-up
    times = [1000 * epoch() / args.batches for _ in range(args.repeats)]
    print(json.dumps({"ms": min(times), "all": times, "flops": flops, "info": info}))


def measure(net: str, variant: str, args: argparse.Namespace) -> dict | None:
    framework, flags, env = VARIANTS.get(variant, ("numpyml", [], {}))
    python = args.baseline if variant.startswith("baseline") else sys.executable
    if variant == "baseline, NumPy first":
        flags = ["--numpy-first"]
    command = [python, __file__, "--child", net, "--framework", framework, "--batches", str(args.batches),
               "--repeats", str(args.repeats), *flags]
    return run_child(command, f"{variant} on {net}", env={**os.environ, **env})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="batches per timed epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per process after one warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="processes per variant, the variants taking turns")
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=["mnist", "cifar"])
    parser.add_argument("--timeout-variant", action="store_true",
                        help="also time numpyml with OPENBLAS_THREAD_TIMEOUT=28 in the environment")
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="also time numpyml as installed for this interpreter (e.g. another checkout's "
                             ".venv/bin/python), imported first and after NumPy: the rows 'baseline'")
    parser.add_argument("--child", choices=sorted(NETS), help=argparse.SUPPRESS)  # internal: one measurement
    parser.add_argument("--framework", choices=["numpyml", "torch"], default="numpyml", help=argparse.SUPPRESS)
    parser.add_argument("--numpy-first", action="store_true", help=argparse.SUPPRESS)  # read at the top
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    variants = [name for name in VARIANTS if args.timeout_variant or "TIMEOUT" not in name]
    if args.baseline:
        variants[2:2] = ["baseline", "baseline, NumPy first"]
    load = os.getloadavg()[0]
    print(f"batch {BATCH}, {args.batches} batches per epoch, best of {args.repeats} epochs per process, "
          f"best of {args.rounds} processes per variant (variants alternate); load average {load:.2f} at start")
    for net in args.nets:
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name in variants:
                result = measure(net, name, args)
                if result is not None:
                    results[name].append(result)
        print(f"\n{NETS[net]['title']}")
        print(f"  {'variant':<36} {'ms/batch':>9} {'GFLOP/s':>8} {'vs PyTorch':>10}   rounds (ms/batch)")
        flops = next(r["flops"] for rs in results.values() for r in rs if r["flops"])
        torch_ms = min((r["ms"] for r in results.get("PyTorch", [])), default=None)
        for name in variants:
            if not results[name]:
                print(f"  {name:<36} {'n/a (not installed)':>20}")
                continue
            best = min(r["ms"] for r in results[name])
            rate = flops * BATCH / best / 1e6
            ratio = f"{best / torch_ms:9.2f}x" if torch_ms else f"{'n/a':>10}"
            rounds = " ".join(f"{r['ms']:.1f}" for r in results[name])
            print(f"  {name:<36} {best:9.1f} {rate:8.1f} {ratio}   {rounds}")
        ours = results["numpyml"]
        if ours and results["numpyml, NumPy first"]:
            first = min(r["ms"] for r in results["numpyml, NumPy first"]) / min(r["ms"] for r in ours)
            print(f"  NumPy first / numpyml first: {first:.2f}")
        print("  " + "; ".join(sorted({r["info"] for rs in results.values() for r in rs})))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
