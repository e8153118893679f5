"""Helpers shared by ``benchmarks/mlp.py`` and ``benchmarks/conv.py``: random image data sets, the
plugin that registers one with the trainer, and the timed epoch of the PyTorch reference loop."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from numpyml_core import hookimpl
from numpyml_core.data import ArraySplit


def synthetic_split(input_shape: tuple[int, ...], size: int) -> ArraySplit:
    """``size`` random uint8 images of ``input_shape`` with random labels 0-9 (seed 0)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(size, *input_shape), dtype=np.uint8)
    return ArraySplit(x, rng.integers(0, 10, size=size))


class SyntheticImages:
    """A dataset of :func:`synthetic_split` images in 10 classes, only a ``train`` split; subclasses
    set ``input_shape`` and ``size``."""

    num_classes = 10
    class_names = [str(i) for i in range(10)]
    input_shape: tuple[int, ...]
    size: int

    def load(self, data_dir: Any) -> dict[str, ArraySplit]:
        return {"train": synthetic_split(self.input_shape, self.size)}


class _DatasetPlugin:
    """A plugin object whose hook registers one dataset component."""

    def __init__(self, name: str, factory: Callable[..., Any]) -> None:
        self.name = name
        self.factory = factory

    @hookimpl
    def numpyml_register_components(self, register: Callable[..., None]) -> None:
        register("dataset", self.name, self.factory)


def register_dataset(manager: Any, name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory`` with ``manager`` as the dataset ``name`` (plugin ``bench``)."""
    manager.load_plugin(_DatasetPlugin(name, factory), "bench", "benchmarks", "")


def torch_epoch_timer(model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any, batch_size: int) -> Callable[[], float]:
    """A function that trains the PyTorch ``model`` for one epoch over ``x``, ``y`` (shuffled by its
    own generator, seed 0) in batches of ``batch_size`` and returns the seconds it took."""
    import torch

    generator = torch.Generator().manual_seed(0)

    def epoch() -> float:
        started = time.perf_counter()
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started

    return epoch


def run_child(command: list[str], what: str, env: dict[str, str] | None = None) -> dict | None:
    """Run one measurement in a process of its own and return the JSON it prints last; ``None`` when the
    child needs PyTorch and it is not installed; any other failure ends the benchmark naming ``what``."""
    import json
    import subprocess
    import sys

    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        if "--framework" in command and command[command.index("--framework") + 1] == "torch" \
                and "No module named 'torch'" in done.stderr:
            return None
        sys.exit(f"{what} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])
