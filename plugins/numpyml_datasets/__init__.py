"""numpyml built-in plugin: datasets (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100) and the user's own files
(``npz``, ``csv``, ``image_folder``; see docs/datasets.md)."""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("dataset", "mnist", "numpyml_datasets.mnist:MNIST")
    register("dataset", "fashion_mnist", "numpyml_datasets.mnist:FashionMNIST")
    register("dataset", "cifar10", "numpyml_datasets.cifar:CIFAR10")
    register("dataset", "cifar100", "numpyml_datasets.cifar:CIFAR100")
    register("dataset", "npz", "numpyml_datasets.npz:NPZ")
    register("dataset", "csv", "numpyml_datasets.csvfile:CSV")
    register("dataset", "image_folder", "numpyml_datasets.imagefolder:ImageFolder")
