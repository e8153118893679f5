"""Milliseconds per training step (forward + backward + update, batch 64) of the nets of conv.py, in this process.

    uv run --no-sync python benchmarks/step.py [--nets mnist cifar] [--steps 20] [--repeats 5]

A quick probe for one change at a time: no PyTorch, no trainer epoch loop; the best of ``--repeats``
blocks of ``--steps`` steps (so a busy spell of the host is left out), plus each layer's share
(forward and backward timed separately, best of the blocks).
"""

from __future__ import annotations

import argparse
import sys
import time

if "--numpy-first" in sys.argv:
    import numpy  # noqa: F401

import numpyml_core as nm
import numpy as np
from numpyml_core.plugins import get_plugin_manager
from numpyml_core.trainer import prepare

from _common import register_dataset
from conv import BATCH, NETS, _Synthetic, experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=["mnist", "cifar"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", action="store_true", help="also time every layer's forward and backward")
    parser.add_argument("--numpy-first", action="store_true")
    args = parser.parse_args()
    register_dataset(get_plugin_manager(), "bench_conv_synthetic", _Synthetic)
    for net in args.nets:
        exp = nm.Experiment.from_dict(experiment(net, BATCH * 4, 1), source="benchmarks/step.py")
        run = prepare(exp.spec, exp.manager)
        x, y = run.splits["train"].batch(np.arange(BATCH))
        for _ in range(3):
            run.strategy.train_batch(run, x, y)
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            for _ in range(args.steps):
                run.strategy.train_batch(run, x, y)
            best = min(best, (time.perf_counter() - started) / args.steps)
        print(f"{NETS[net]['title']:<22} {1000 * best:7.2f} ms per step")
        if args.layers:
            layer_times(run.model, x)
        sys.stdout.flush()


def layer_times(model, x) -> None:
    outputs = [x.astype(np.float32) / 255]
    for layer in model.layers:
        outputs.append(layer.forward(outputs[-1], True))
    for index, layer in enumerate(model.layers):
        forward = backward = float("inf")
        dy = np.ones_like(outputs[index + 1])
        for _ in range(10):
            started = time.perf_counter()
            layer.forward(outputs[index], True)
            middle = time.perf_counter()
            layer.backward(dy)
            forward = min(forward, middle - started)
            backward = min(backward, time.perf_counter() - middle)
        print(f"    {index} {type(layer).__name__:<12} forward {1000 * forward:6.2f} ms  backward {1000 * backward:6.2f} ms")


if __name__ == "__main__":
    main()
