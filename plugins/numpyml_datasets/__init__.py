"""numpyml built-in plugin: datasets (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100) and the user's own files
(``npz``, ``csv``, ``image_folder``; see docs/datasets.md)."""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("dataset", "mnist"): "numpyml_datasets.mnist:MNIST",
    ("dataset", "fashion_mnist"): "numpyml_datasets.mnist:FashionMNIST",
    ("dataset", "cifar10"): "numpyml_datasets.cifar:CIFAR10",
    ("dataset", "cifar100"): "numpyml_datasets.cifar:CIFAR100",
    ("dataset", "npz"): "numpyml_datasets.npz:NPZ",
    ("dataset", "csv"): "numpyml_datasets.csvfile:CSV",
    ("dataset", "image_folder"): "numpyml_datasets.imagefolder:ImageFolder",
})

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "NPZ", "CSV", "ImageFolder"]
__getattr__ = lazy_exports(__name__, {
    "MNIST": ".mnist:MNIST",
    "FashionMNIST": ".mnist:FashionMNIST",
    "CIFAR10": ".cifar:CIFAR10",
    "CIFAR100": ".cifar:CIFAR100",
    "NPZ": ".npz:NPZ",
    "CSV": ".csvfile:CSV",
    "ImageFolder": ".imagefolder:ImageFolder",
})
